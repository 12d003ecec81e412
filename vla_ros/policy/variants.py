"""Model variants as data: ``config/models/<name>.yaml`` -> :class:`ModelVariant`.

A variant names a LeRobot SmolVLA checkpoint (a Hugging Face hub id or a local directory) and how
to run it (device, dtype). The variant's name is its file name, so adding a model is adding a
YAML file. This module imports no torch, so launch files and the CLI can list and validate
variants cheaply.

Example::

    variant = load_variant("frozen", device_override="cpu")
    variant.checkpoint   # 'Sythen/my_smolvla_training_frozen'
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

from vla_ros.paths import cache_dir, config_dir

DEVICES = ("auto", "cpu", "cuda", "mps")
"""Accepted device names; ``cuda:<index>`` is accepted too."""

DTYPES = ("auto", "float32", "bfloat16")
"""Accepted dtypes. ``bfloat16`` runs the VLM backbone in bf16 (the action expert stays float32,
as LeRobot does when it loads the VLM's pretrained weights); ``auto`` picks bf16 on CUDA devices
that support it and float32 elsewhere."""

BUILDERS = ("tiny",)
"""Variants that can be built offline on first use instead of being downloaded."""

DEFAULT_MISSING_HINT = (
    "pass checkpoint:=<dir> (a LeRobot checkpoint directory with config.json and model.safetensors)"
)


@dataclass(frozen=True)
class ModelVariant:
    """One entry of ``config/models``.

    Args:
        name: The variant name (the YAML file name without ``.yaml``), e.g. ``full``.
        description: One line for humans (shown by ``vla-ros`` and in PolicyStatus).
        checkpoint: A hub id (``owner/name``) or a local LeRobot checkpoint directory; ``None``
            for a variant that is built offline (``builder``). ``~`` and ``{cache}`` (the vla_ros
            cache directory, see :func:`vla_ros.paths.cache_dir`) are expanded.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:<n>`` or ``mps``.
        dtype: ``auto``, ``float32`` or ``bfloat16``.
        builder: ``tiny`` for the embedded offline policy, else ``None``.
        build: Options for the builder (fields of :class:`vla_ros.policy.tiny.TinyPolicyConfig`).
        missing_hint: What to tell a person when the checkpoint is missing.
        source: The YAML file this variant was read from.
    """

    name: str
    description: str = ""
    checkpoint: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    builder: str | None = None
    build: Mapping[str, Any] = field(default_factory=dict)
    missing_hint: str = DEFAULT_MISSING_HINT
    source: Path | None = None

    @property
    def builds_offline(self) -> bool:
        """True when the checkpoint is built locally (no checkpoint given, a builder set)."""
        return self.checkpoint is None and self.builder is not None


def _models_dir(models_dir: str | Path | None) -> Path:
    return Path(models_dir) if models_dir is not None else config_dir("models")


def available_variants(models_dir: str | Path | None = None) -> list[str]:
    """Sorted names of the variants in ``config/models`` (or ``models_dir``)."""
    directory = _models_dir(models_dir)
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.yaml"))


def expand_checkpoint(ref: str) -> str:
    """Expand ``{cache}`` (the vla_ros cache directory) and a leading ``~`` in a checkpoint."""
    ref = ref.strip()
    if "{cache}" in ref:
        ref = ref.replace("{cache}", str(cache_dir()))
    if ref.startswith("~"):
        ref = os.path.expanduser(ref)
    return ref


def validate_device(device: str, where: str = "device") -> str:
    """Return ``device`` if it is one of :data:`DEVICES` (or ``cuda:<n>``), else raise ValueError."""
    device = str(device).strip().lower()
    if device in DEVICES or re.fullmatch(r"cuda:\d+", device):
        return device
    raise ValueError(f"{where}: invalid device '{device}'; valid: {', '.join(DEVICES)} or cuda:<index>")


def _parse(name: str, path: Path, data: Any) -> ModelVariant:
    where = str(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping of fields, got {type(data).__name__}")
    known = {f.name for f in fields(ModelVariant)} - {"name", "source"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")

    checkpoint = data.get("checkpoint")
    if checkpoint is not None:
        if not isinstance(checkpoint, str) or not checkpoint.strip():
            raise ValueError(f"{where}: 'checkpoint' must be a hub id or a directory, or null")
        checkpoint = expand_checkpoint(checkpoint)
    builder = data.get("builder")
    if builder is not None and builder not in BUILDERS:
        raise ValueError(f"{where}: invalid builder '{builder}'; valid: {', '.join(BUILDERS)}")
    if checkpoint is None and builder is None:
        raise ValueError(f"{where}: set 'checkpoint' (hub id or directory) or 'builder'")
    dtype = str(data.get("dtype", "auto"))
    if dtype not in DTYPES:
        raise ValueError(f"{where}: invalid dtype '{dtype}'; valid: {', '.join(DTYPES)}")
    build = data.get("build") or {}
    if not isinstance(build, dict):
        raise ValueError(f"{where}: 'build' must be a mapping")
    hint = data.get("missing_hint") or DEFAULT_MISSING_HINT
    return ModelVariant(
        name=name,
        description=str(data.get("description", "")).strip(),
        checkpoint=checkpoint,
        device=validate_device(data.get("device", "auto"), f"{where}: device"),
        dtype=dtype,
        builder=builder,
        build=dict(build),
        missing_hint=" ".join(str(hint).split()),
        source=path,
    )


def load_variant(
    name: str,
    checkpoint_override: str | None = None,
    device_override: str | None = None,
    *,
    models_dir: str | Path | None = None,
) -> ModelVariant:
    """Read ``config/models/<name>.yaml``.

    Args:
        name: Variant name, e.g. ``full``, ``frozen``, ``l1``, ``distilled``, ``tiny``.
        checkpoint_override: A hub id or directory that replaces the variant's checkpoint
            (launch argument ``checkpoint:=``). Empty or ``None``: keep the variant's.
        device_override: Replaces the variant's device (launch argument ``device:=``).
            Empty or ``None``: keep the variant's.
        models_dir: Directory of variant files; default ``config/models`` of the installed package.

    Raises:
        ValueError: unknown name (the message lists the valid names) or an invalid file/field.
    """
    directory = _models_dir(models_dir)
    names = available_variants(directory)
    if name not in names:
        raise ValueError(
            f"unknown model '{name}'; valid names: {', '.join(names) or '(none)'} (from {directory})"
        )
    path = directory / f"{name}.yaml"
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ValueError(f"{path}: invalid YAML: {e}") from e
    variant = _parse(name, path, data)
    if checkpoint_override is not None and str(checkpoint_override).strip():
        variant = replace(variant, checkpoint=expand_checkpoint(str(checkpoint_override)))
    if device_override is not None and str(device_override).strip():
        variant = replace(variant, device=validate_device(device_override, "device override"))
    return variant
