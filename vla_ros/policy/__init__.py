"""The policy layer: model variants, checkpoint loading, the SmolVLA runtime, the inference worker.

Modules (LeRobot's split: configuration apart from the model):

- ``variants``: ``config/models/<name>.yaml`` -> :class:`ModelVariant` (no torch).
- ``robot_dims``: :class:`RobotDims`, what a policy must match on a robot (no torch).
- ``tiny``: the embedded tiny SmolVLA policy, built offline into the cache on first use, and the
  same builder at SmolVLA's real sizes (random weights) for benchmarks.
- ``speed``: CPU bf16 detection, the speed levers (dtype, flow steps, image size) and per-stage timing.
- ``loading``: hub id or directory -> local checkpoint -> LeRobot policy + processors.
- ``runtime``: :class:`PolicyRuntime` (numpy in, action chunk out) and :func:`make_runtime`.
- ``worker``: :class:`InferenceWorker`, one background thread, never more than one job.

Names that need torch are imported on first use, so ``from vla_ros.policy import load_variant``
stays cheap.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

from vla_ros.policy.errors import CheckpointError, PolicyMismatchError
from vla_ros.policy.robot_dims import RobotDims
from vla_ros.policy.variants import ModelVariant, available_variants, load_variant

_LAZY = {
    "TinyPolicyConfig": "vla_ros.policy.tiny",
    "ensure_tiny_checkpoint": "vla_ros.policy.tiny",
    "ensure_full_size_checkpoint": "vla_ros.policy.tiny",
    "LoadedPolicy": "vla_ros.policy.loading",
    "load_policy": "vla_ros.policy.loading",
    "resolve_checkpoint": "vla_ros.policy.loading",
    "PolicyRuntime": "vla_ros.policy.runtime",
    "make_runtime": "vla_ros.policy.runtime",
    "load_runtime": "vla_ros.policy.runtime",
    "InferenceWorker": "vla_ros.policy.worker",
}

__all__ = [
    "CheckpointError",
    "ModelVariant",
    "PolicyMismatchError",
    "RobotDims",
    "available_variants",
    "load_variant",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vla_ros.policy' has no attribute '{name}'")
    return getattr(import_module(module), name)
