"""Run a loaded SmolVLA policy on numpy observations: one call, one action chunk.

``predict_chunk`` runs LeRobot's own inference path: ``prepare_observation_for_inference``
(HxWx3 uint8 -> 1x3xHxW float in [0, 1]), the saved preprocessor (tokenizer, normalizer, device),
``policy.predict_action_chunk`` (images resized with padding inside the policy), then the saved
postprocessor (unnormalizer), all under ``torch.inference_mode``.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from vla_ros.policy.errors import PolicyMismatchError
from vla_ros.policy.loading import LoadedPolicy, load_policy, resolve_checkpoint, resolve_device, resolve_dtype
from vla_ros.policy.robot_dims import RobotDims
from vla_ros.policy.tiny import TinyPolicyConfig, ensure_tiny_checkpoint
from vla_ros.policy.variants import ModelVariant, load_variant

if TYPE_CHECKING:
    from vla_ros.core.embodiment import RobotSpec

logger = logging.getLogger(__name__)

THREADS_ENV = "VLA_ROS_TORCH_THREADS"


def default_num_threads() -> int:
    """``$VLA_ROS_TORCH_THREADS``, else the usable CPUs minus one (left to the ROS callbacks), >= 1."""
    env = os.environ.get(THREADS_ENV, "").strip()
    if env:
        try:
            value = int(env)
        except ValueError:
            raise ValueError(f"{THREADS_ENV}: expected an integer, got '{env}'") from None
        if value < 1:
            raise ValueError(f"{THREADS_ENV}: expected >= 1, got {value}")
        return value
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus - 1)


class PolicyRuntime:
    """A loaded SmolVLA policy behind a numpy interface.

    Thread-safe: calls are serialised by a lock (the policy is not re-entrant).

    Args:
        loaded: The policy and its processors (:func:`vla_ros.policy.loading.load_policy`).
        variant: The variant name it came from (reported in ActionChunk / PolicyStatus).
        checkpoint: The checkpoint reference as the user gave it (hub id or directory); default
            the loaded directory.
        num_threads: torch CPU threads (process-wide); default :func:`default_num_threads`.
            Only applied when the policy runs on the CPU.
    """

    def __init__(
        self,
        loaded: LoadedPolicy,
        variant: str = "custom",
        checkpoint: str | None = None,
        num_threads: int | None = None,
    ) -> None:
        import torch

        self._loaded = loaded
        self._variant = variant
        self._checkpoint = checkpoint or str(loaded.checkpoint_dir)
        self._lock = threading.Lock()
        self.last_timing: dict[str, float] = {}
        """Seconds spent in the last :meth:`predict_chunk`: preprocess, model, postprocess, total."""
        if loaded.device == "cpu":
            self.num_threads = num_threads or default_num_threads()
            torch.set_num_threads(self.num_threads)
        else:
            self.num_threads = torch.get_num_threads()
        config = loaded.config
        self._image_keys = tuple(config.image_features)
        self._image_shapes = {key: tuple(ft.shape) for key, ft in config.image_features.items()}
        self._state_dim = int(config.robot_state_feature.shape[0])
        self._action_dim = int(config.action_feature.shape[0])

    # -- what the policy expects ------------------------------------------------------------
    @property
    def image_keys(self) -> tuple[str, ...]:
        """Policy image features, e.g. ``('observation.images.top', 'observation.images.wrist')``."""
        return self._image_keys

    @property
    def state_dim(self) -> int:
        return self._state_dim

    @property
    def action_dim(self) -> int:
        return self._action_dim

    @property
    def chunk_size(self) -> int:
        """Actions per chunk (rows returned by :meth:`predict_chunk`)."""
        return int(self._loaded.config.chunk_size)

    @property
    def variant(self) -> str:
        return self._variant

    @property
    def checkpoint(self) -> str:
        return self._checkpoint

    @property
    def checkpoint_dir(self) -> Path:
        return self._loaded.checkpoint_dir

    @property
    def device(self) -> str:
        return self._loaded.device

    @property
    def dtype(self) -> str:
        return self._loaded.dtype

    @property
    def options(self) -> dict:
        """The speed levers it runs with: ``{"dtype", "num_steps", "image_size", "vision_int8",
        "cpu_kernels"}`` (:func:`vla_ros.policy.speed.current_options`)."""
        from vla_ros.policy.speed import current_options

        return current_options(self._loaded.policy)

    @property
    def loaded(self) -> LoadedPolicy:
        """The underlying LeRobot policy and processors."""
        return self._loaded

    def normalization_stats(self) -> dict[str, dict[str, np.ndarray]]:
        """The preprocessor's normalization stats, ``{feature: {"mean": ..., "std": ...}}`` as numpy."""
        from lerobot.processor import NormalizerProcessorStep

        out: dict[str, dict[str, np.ndarray]] = {}
        for step in self._loaded.preprocessor.steps:
            if isinstance(step, NormalizerProcessorStep):
                for flat_key, tensor in step.state_dict().items():
                    feature, stat = flat_key.rsplit(".", 1)
                    out.setdefault(feature, {})[stat] = tensor.detach().float().cpu().numpy()
        return out

    def check_compatible(self, state_dim: int, action_dim: int, image_keys: Sequence[str]) -> None:
        """Check the policy against a robot; raise one error that names every mismatch.

        Args:
            state_dim: Length of the robot's state vector.
            action_dim: Length of the action vector the robot executes.
            image_keys: Policy image keys the robot's cameras are mapped to. Every key the policy
                needs must be there; extra cameras are allowed (unused).

        Raises:
            PolicyMismatchError: listing state/action dimension, stats and camera mismatches.
        """
        problems = []
        if int(state_dim) != self.state_dim:
            problems.append(f"state dimension: policy {self.state_dim}, robot {state_dim}")
        if int(action_dim) != self.action_dim:
            problems.append(f"action dimension: policy {self.action_dim}, robot {action_dim}")
        for feature, expected in (("observation.state", self.state_dim), ("action", self.action_dim)):
            for name, values in self.normalization_stats().get(feature, {}).items():
                if name == "count":  # lerobot-train's frame count: one value, not per joint
                    continue
                if values.ndim and values.shape[-1] != expected:
                    problems.append(f"{feature} {name} stats have {values.shape[-1]} values, expected {expected}")
        missing = [k for k in self.image_keys if k not in set(image_keys)]
        if missing:
            problems.append(
                f"cameras: policy needs {list(self.image_keys)}, robot provides {sorted(image_keys)} "
                f"(missing {missing})"
            )
        if problems:
            raise PolicyMismatchError(
                f"policy '{self.variant}' ({self.checkpoint_dir / 'config.json'}) does not fit the robot: "
                + "; ".join(problems)
                + ". Use a checkpoint trained for this robot (checkpoint:=<dir>) or the robot it was trained "
                "for (robot:=<name>)"
            )

    # -- inference --------------------------------------------------------------------------
    def _observation(self, images: Mapping[str, np.ndarray], state: np.ndarray) -> dict[str, np.ndarray]:
        missing = [k for k in self.image_keys if k not in images]
        if missing:
            raise ValueError(f"missing images {missing}; the policy needs {list(self.image_keys)}")
        observation: dict[str, np.ndarray] = {}
        for key in self.image_keys:
            image = np.asarray(images[key])
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(
                    f"image '{key}': expected HxWx3 uint8 RGB, got shape {image.shape} dtype {image.dtype}"
                )
            observation[key] = image
        state = np.asarray(state, dtype=np.float32).reshape(-1)
        if state.shape != (self.state_dim,):
            raise ValueError(f"state: expected {self.state_dim} values, got {state.shape[0]}")
        if not np.all(np.isfinite(state)):
            raise ValueError(f"state has non-finite values: {state}")
        observation["observation.state"] = state
        return observation

    def predict_chunk(
        self,
        images: Mapping[str, np.ndarray],
        state: np.ndarray,
        instruction: str,
        seed: int | None = None,
    ) -> np.ndarray:
        """Predict one action chunk.

        Args:
            images: One HxWx3 uint8 RGB array per policy image key (any size; the policy
                resizes with padding). Extra keys are ignored.
            state: ``(state_dim,)`` float32 robot state in policy units.
            instruction: The task in natural language (tokenized by the policy's tokenizer).
            seed: Seed of the flow-matching noise; ``None`` draws fresh noise (normal use).
                A fixed seed makes the output repeatable (comparisons, tests).

        Returns:
            ``(chunk_size, action_dim)`` float32 actions, unnormalized (the policy's units).
            Timings are in :attr:`last_timing`.
        """
        import torch
        from lerobot.policies.utils import prepare_observation_for_inference

        if not isinstance(instruction, str) or not instruction.strip():
            raise ValueError("instruction: a non-empty string is required")
        observation = self._observation(images, state)
        loaded = self._loaded
        device = torch.device(loaded.device)
        with self._lock, torch.inference_mode():
            t0 = time.perf_counter()
            batch = prepare_observation_for_inference(observation, device, instruction.strip())
            batch = loaded.preprocessor(batch)
            noise = None
            if seed is not None:
                generator = torch.Generator().manual_seed(int(seed))
                shape = (1, self.chunk_size, int(loaded.config.max_action_dim))
                noise = torch.randn(shape, generator=generator).to(device)
            t1 = time.perf_counter()
            actions = loaded.policy.predict_action_chunk(batch, noise=noise)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t2 = time.perf_counter()
            actions = loaded.postprocessor(actions)
            out = actions.squeeze(0).to(dtype=torch.float32).cpu().numpy()
            t3 = time.perf_counter()
        self.last_timing = {"preprocess": t1 - t0, "model": t2 - t1, "postprocess": t3 - t2, "total": t3 - t0}
        return out

    def warmup(self, iterations: int = 2) -> dict[str, float]:
        """Run ``iterations`` predictions on dummy inputs (so the first real chunk is not slow).

        Returns the timing of the last one.
        """
        images = {}
        for key in self.image_keys:
            _, height, width = self._image_shapes[key]
            images[key] = np.zeros((height, width, 3), dtype=np.uint8)
        state = self.normalization_stats().get("observation.state", {}).get("mean")
        state = np.zeros(self.state_dim, np.float32) if state is None else state.astype(np.float32)
        for _ in range(max(1, iterations)):
            self.predict_chunk(images, state, "warm up", seed=0)
        return dict(self.last_timing)


def load_runtime(
    variant: ModelVariant,
    robot: "RobotDims | RobotSpec | None" = None,
    *,
    image_keys: Sequence[str] | None = None,
    num_threads: int | None = None,
    warmup: bool = False,
) -> PolicyRuntime:
    """Variant -> checkpoint (built, cached or downloaded) -> loaded runtime, checked against ``robot``.

    Args:
        variant: From :func:`vla_ros.policy.variants.load_variant` (overrides already applied).
        robot: A :class:`RobotDims`, or a robot spec (``vla_ros.core.embodiment.RobotSpec``, made
            into RobotDims with :meth:`RobotDims.from_robot_spec`). Required by ``tiny`` (the
            policy is built for it); for every variant, checked against the loaded policy.
        image_keys: The policy image keys the robot's cameras are mapped to, when they differ
            from the spec's ``policy_key`` entries (only used with a robot spec).
        num_threads: torch CPU threads; default :func:`default_num_threads`.
        warmup: Run :meth:`PolicyRuntime.warmup` before returning.

    The device is resolved first (``auto``: cuda, mps, else cpu), then the variant's block for
    that kind of device (``cpu:`` ...) is applied, then the dtype (``auto``: see
    :func:`vla_ros.policy.loading.resolve_dtype`; ``cpu_bf16`` lets it pick bf16 on a CPU with
    native bf16) and the speed levers ``num_steps`` / ``image_size`` / ``vision_int8``
    (:func:`vla_ros.policy.speed.apply_load_options`).

    Raises:
        ValueError: ``tiny`` without a robot, a bad or unavailable device, a dtype the device
            lacks, an image size the policy cannot run with.
        CheckpointError: the checkpoint cannot be found or loaded (says how to fix it).
        PolicyMismatchError: the policy does not fit the robot.
    """
    from vla_ros.policy.speed import apply_load_options

    device = resolve_device(variant.device)
    variant = variant.for_device(device)
    dtype = resolve_dtype(variant.dtype, device, cpu_bf16=variant.cpu_bf16)
    dims = robot
    if robot is not None and not isinstance(robot, RobotDims):
        dims = RobotDims.from_robot_spec(robot, image_keys=image_keys)
    if variant.builds_offline:
        if dims is None:
            raise ValueError(f"model '{variant.name}' is built for a robot: pass the robot")
        directory = ensure_tiny_checkpoint(dims, TinyPolicyConfig.from_options(variant.build))
        reference = str(directory)
    else:
        directory = resolve_checkpoint(variant.checkpoint, missing_hint=variant.missing_hint)
        reference = variant.checkpoint
    loaded = load_policy(directory, device=device, dtype=dtype)
    try:
        apply_load_options(
            loaded.policy,
            dtype=dtype,
            num_steps=variant.num_steps,
            image_size=variant.image_size,
            vision_int8=variant.vision_int8,
        )
    except ValueError as e:
        raise ValueError(f"model '{variant.name}' ({variant.source or reference}): {e}") from None
    runtime = PolicyRuntime(
        loaded,
        variant=variant.name,
        checkpoint=reference,
        num_threads=num_threads,
    )
    if dims is not None:
        runtime.check_compatible(dims.state_dim, dims.action_dim, dims.image_keys)
    if warmup:
        runtime.warmup()
    return runtime


def make_runtime(
    variant_name: str,
    checkpoint: str | None = None,
    device: str | None = None,
    robot_dims: RobotDims | None = None,
    num_threads: int | None = None,
    warmup: bool = True,
    dtype: str | None = None,
    num_steps: int | None = None,
    image_size: int | None = None,
) -> PolicyRuntime:
    """Variant name (+ launch overrides) -> a loaded, checked, warm runtime.

    Args:
        variant_name: A name from ``config/models`` (``full``, ``frozen``, ``l1``, ``distilled``, ``tiny``).
        checkpoint: Replaces the variant's checkpoint (hub id or directory); empty: keep it.
        device: Replaces the variant's device; empty: keep it.
        robot_dims: The robot; required by ``tiny``, checked against any policy.
        num_threads: torch CPU threads; default :func:`default_num_threads`.
        warmup: Run :meth:`PolicyRuntime.warmup` before returning (so the first real chunk is
            not slowed by one-time allocations and kernel selection).
        dtype, num_steps, image_size: Replace the variant's load options (and its per-device
            blocks); empty / ``None`` / 0: keep them.

    Raises:
        ValueError: unknown variant (lists the names), bad device, ``tiny`` without robot_dims.
        CheckpointError: the checkpoint cannot be found or loaded (says how to fix it).
        PolicyMismatchError: the policy does not fit ``robot_dims``.
    """
    variant = load_variant(
        variant_name,
        checkpoint_override=checkpoint,
        device_override=device,
        dtype_override=dtype,
        num_steps_override=num_steps,
        image_size_override=image_size,
    )
    return load_runtime(variant, robot_dims, num_threads=num_threads, warmup=warmup)
