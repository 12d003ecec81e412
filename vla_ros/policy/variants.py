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
"""Accepted dtypes. ``bfloat16`` keeps the weights of the VLM backbone and the action expert in
bf16 (the small state/action/time projections, the attention softmax and the flow-matching
integration stay float32); ``auto`` picks bf16 on CUDA devices that support it, on CPUs with
native bf16 instructions when the variant sets ``cpu_bf16: true``, and float32 elsewhere
(see :func:`vla_ros.policy.loading.resolve_dtype`)."""

LOAD_OPTIONS = ("dtype", "num_steps", "image_size", "vision_int8")
"""Fields a per-device block (``cpu:``, ``cuda:``, ``mps:``) may set; they apply when the device
resolves to that kind."""

DEVICE_BLOCKS = ("cpu", "cuda", "mps")

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
        cpu_bf16: Let ``dtype: auto`` pick bf16 on a CPU with native bf16 instructions
            (``avx512_bf16`` / ``amx_bf16``, or ``bf16`` on Arm); ``False``: float32 on every CPU.
        num_steps: Flow-matching denoising steps; ``None``: the checkpoint's (SmolVLA: 10).
        image_size: Side of the square the cameras are resized to (with padding) before the
            vision encoder; ``None``: the checkpoint's (SmolVLA: 512). A multiple of the encoder's
            patch size times the connector's pixel-shuffle factor (SmolVLA: 64).
        vision_int8: The vision tower's Linear layers with int8 weights and dynamically
            quantized int8 activations (CPU only; :func:`vla_ros.policy.speed.quantize_vision_int8`).
        per_device: Load options (:data:`LOAD_OPTIONS`) that apply only on one kind of device,
            e.g. ``{"cpu": {"num_steps": 5}}`` (YAML blocks ``cpu:``, ``cuda:``, ``mps:``).
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
    cpu_bf16: bool = False
    num_steps: int | None = None
    image_size: int | None = None
    vision_int8: bool = False
    per_device: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def builds_offline(self) -> bool:
        """True when the checkpoint is built locally (no checkpoint given, a builder set)."""
        return self.checkpoint is None and self.builder is not None

    def for_device(self, device: str) -> "ModelVariant":
        """This variant with the ``per_device`` block of ``device``'s kind applied.

        Args:
            device: A resolved device (``cpu``, ``cuda``, ``cuda:1``, ``mps``).
        """
        block = self.per_device.get(str(device).split(":")[0], {})
        return replace(self, **block) if block else self


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


def validate_num_steps(value: Any, where: str = "num_steps") -> int | None:
    """``None`` or an integer >= 1 (flow-matching steps), else ValueError naming ``where``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where}: expected an integer >= 1 (flow-matching steps) or null, got {value!r}")
    return value


def validate_image_size(value: Any, where: str = "image_size") -> int | None:
    """``None`` or an integer >= 1, else ValueError naming ``where``.

    The loaded policy checks the value against its own architecture
    (:func:`vla_ros.policy.speed.apply_load_options`: for SmolVLA a multiple of 64 = patch size
    16 x pixel-shuffle factor 4, at most 512).
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where}: expected an image side in pixels (e.g. 256, 384, 512) or null, got {value!r}")
    return value


def validate_dtype(value: Any, where: str = "dtype") -> str:
    dtype = str(value).strip().lower()
    if dtype not in DTYPES:
        raise ValueError(f"{where}: invalid dtype '{value}'; valid: {', '.join(DTYPES)}")
    return dtype


def _load_options(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "dtype" in data:
        out["dtype"] = validate_dtype(data["dtype"], f"{where}: dtype")
    if "num_steps" in data:
        out["num_steps"] = validate_num_steps(data["num_steps"], f"{where}: num_steps")
    if "image_size" in data:
        out["image_size"] = validate_image_size(data["image_size"], f"{where}: image_size")
    if "vision_int8" in data:
        if not isinstance(data["vision_int8"], bool):
            raise ValueError(f"{where}: vision_int8: expected true or false, got {data['vision_int8']!r}")
        out["vision_int8"] = data["vision_int8"]
    return out


def _parse(name: str, path: Path, data: Any) -> ModelVariant:
    where = str(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping of fields, got {type(data).__name__}")
    known = ({f.name for f in fields(ModelVariant)} - {"name", "source", "per_device"}) | set(DEVICE_BLOCKS)
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
    options = _load_options({"dtype": "auto", **data}, where)
    cpu_bf16 = data.get("cpu_bf16", False)
    if not isinstance(cpu_bf16, bool):
        raise ValueError(f"{where}: cpu_bf16: expected true or false, got {cpu_bf16!r}")
    per_device: dict[str, dict[str, Any]] = {}
    for kind in DEVICE_BLOCKS:
        block = data.get(kind)
        if block is None:
            continue
        if not isinstance(block, dict):
            raise ValueError(f"{where}: '{kind}' must be a mapping of {', '.join(LOAD_OPTIONS)}")
        bad = sorted(set(block) - set(LOAD_OPTIONS))
        if bad:
            raise ValueError(f"{where}: {kind}: unknown field(s) {', '.join(bad)}; valid: {', '.join(LOAD_OPTIONS)}")
        per_device[kind] = _load_options(block, f"{where}: {kind}")
    build = data.get("build") or {}
    if not isinstance(build, dict):
        raise ValueError(f"{where}: 'build' must be a mapping")
    hint = data.get("missing_hint") or DEFAULT_MISSING_HINT
    return ModelVariant(
        name=name,
        description=str(data.get("description", "")).strip(),
        checkpoint=checkpoint,
        device=validate_device(data.get("device", "auto"), f"{where}: device"),
        dtype=options["dtype"],
        builder=builder,
        build=dict(build),
        missing_hint=" ".join(str(hint).split()),
        source=path,
        cpu_bf16=cpu_bf16,
        num_steps=options.get("num_steps"),
        image_size=options.get("image_size"),
        vision_int8=options.get("vision_int8", False),
        per_device=per_device,
    )


def load_variant(
    name: str,
    checkpoint_override: str | None = None,
    device_override: str | None = None,
    *,
    models_dir: str | Path | None = None,
    dtype_override: str | None = None,
    num_steps_override: int | None = None,
    image_size_override: int | None = None,
) -> ModelVariant:
    """Read ``config/models/<name>.yaml``.

    Args:
        name: Variant name, e.g. ``full``, ``frozen``, ``l1``, ``distilled``, ``tiny``.
        checkpoint_override: A hub id or directory that replaces the variant's checkpoint
            (launch argument ``checkpoint:=``). Empty or ``None``: keep the variant's.
        device_override: Replaces the variant's device (launch argument ``device:=``).
            Empty or ``None``: keep the variant's.
        models_dir: Directory of variant files; default ``config/models`` of the installed package.
        dtype_override, num_steps_override, image_size_override: Replace the variant's load
            option everywhere (launch arguments / node parameters; they win over the per-device
            blocks). Empty, ``None`` (or 0 for the integers): keep the variant's.

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
    overrides: dict[str, Any] = {}
    if dtype_override is not None and str(dtype_override).strip():
        overrides["dtype"] = validate_dtype(dtype_override, "dtype override")
    if num_steps_override:
        overrides["num_steps"] = validate_num_steps(num_steps_override, "num_steps override")
    if image_size_override:
        overrides["image_size"] = validate_image_size(image_size_override, "image_size override")
    if overrides:
        # An explicit choice also wins over the per-device blocks.
        per_device = {kind: {k: v for k, v in block.items() if k not in overrides}
                      for kind, block in variant.per_device.items()}
        variant = replace(variant, per_device=per_device, **overrides)
    return variant
