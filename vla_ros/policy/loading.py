"""Find and load a LeRobot SmolVLA checkpoint: hub ids and local directories, one code path.

:func:`resolve_checkpoint` turns a reference (hub id or directory) into a local directory, using
the Hugging Face cache first and failing fast when the hub cannot be reached.
:func:`load_policy` loads that directory with LeRobot's own API: ``PreTrainedConfig``,
``SmolVLAPolicy.from_pretrained`` and ``make_pre_post_processors(pretrained_path=...)``.
Every failure is a :class:`CheckpointError` that names the checkpoint or file and what to do.
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vla_ros.policy.errors import CheckpointError
from vla_ros.policy.variants import DEFAULT_MISSING_HINT, DTYPES, validate_device

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
PREPROCESSOR_FILE = "policy_preprocessor.json"
POSTPROCESSOR_FILE = "policy_postprocessor.json"
REQUIRED_FILES = (CONFIG_FILE, WEIGHTS_FILE)

HUB_TIMEOUT_S = 5.0
"""Seconds to wait for the hub before declaring it unreachable."""

BACKBONE_PATTERNS = ["*.json", "*.txt", "*.jinja", "*.model"]
"""Files of a VLM backbone repo a SmolVLA checkpoint needs (config, tokenizer, processor; no weights)."""

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class LoadedPolicy:
    """A SmolVLA policy with its LeRobot pre/post-processors, ready for inference.

    Args:
        policy: The ``SmolVLAPolicy`` (eval mode, on ``device``).
        preprocessor: The saved ``policy_preprocessor`` pipeline (tokenizer, normalizer, device).
        postprocessor: The saved ``policy_postprocessor`` pipeline (unnormalizer, to CPU).
        checkpoint_dir: The directory it was loaded from.
        device: The torch device string it runs on.
        dtype: ``float32`` or ``bfloat16`` (dtype of the VLM backbone).
    """

    policy: Any
    preprocessor: Any
    postprocessor: Any
    checkpoint_dir: Path
    device: str
    dtype: str

    @property
    def config(self) -> Any:
        """The policy's ``SmolVLAConfig``."""
        return self.policy.config


# --------------------------------------------------------------------------- the hub


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set (read now, not at import)."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return value in {"1", "ON", "YES", "TRUE"} or bool(constants.HF_HUB_OFFLINE)


def hub_reachable(timeout: float = HUB_TIMEOUT_S) -> bool:
    """One quick request to the hub endpoint (honours proxies); False on any connection error."""
    import requests
    from huggingface_hub import constants

    if hub_offline():
        return False
    try:
        requests.head(constants.ENDPOINT, timeout=timeout, allow_redirects=False)
    except requests.RequestException as e:
        logger.debug("hub %s unreachable: %s", constants.ENDPOINT, e)
        return False
    return True


def _missing(directory: Path, names: tuple[str, ...]) -> list[str]:
    return [name for name in names if not (directory / name).is_file()]


def _snapshot(
    repo_id: str, required: tuple[str, ...], timeout: float, allow_patterns: list[str] | None = None
) -> Path | None:
    """The cached snapshot of ``repo_id`` when it holds ``required``, else a fresh download, else
    None when the hub cannot be reached (nothing is tried for longer than ``timeout``)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        local = Path(snapshot_download(repo_id, local_files_only=True))
        if not _missing(local, required):
            return local
    except LocalEntryNotFoundError:
        pass
    if not hub_reachable(timeout):
        return None
    return Path(snapshot_download(repo_id, allow_patterns=allow_patterns, etag_timeout=timeout))


def _looks_like_path(ref: str) -> bool:
    return ref.startswith(("/", "~", ".")) or not _HUB_ID.match(ref) or Path(ref).exists()


def _check_dir(directory: Path, ref: str, hint: str) -> Path:
    if not directory.exists():
        raise CheckpointError(f"checkpoint directory '{ref}' does not exist; {hint}")
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint '{ref}' is not a directory; {hint}")
    # A LeRobot training output (checkpoints/<step>/) keeps the model in pretrained_model/.
    if _missing(directory, REQUIRED_FILES) and not _missing(directory / "pretrained_model", REQUIRED_FILES):
        directory = directory / "pretrained_model"
    missing = _missing(directory, REQUIRED_FILES)
    if missing:
        raise CheckpointError(
            f"checkpoint directory '{directory}' has no {' and no '.join(missing)}; {hint}"
        )
    return directory


def resolve_checkpoint(
    ref: str | Path, *, missing_hint: str = DEFAULT_MISSING_HINT, timeout: float = HUB_TIMEOUT_S
) -> Path:
    """Turn a checkpoint reference into a local LeRobot checkpoint directory.

    Args:
        ref: A local directory (absolute, ``~``, ``./`` or an existing relative path) holding
            ``config.json`` and ``model.safetensors`` (a LeRobot training output with a
            ``pretrained_model/`` folder works too), or a hub id ``owner/name``. A hub id is taken
            from the Hugging Face cache when it is there, without contacting the hub; otherwise
            it is downloaded.
        missing_hint: What to tell the person when it cannot be found (the variant's hint).
        timeout: Seconds to wait for the hub before declaring it unreachable.

    Raises:
        CheckpointError: not found locally and the hub is unreachable or offline
            (``HF_HUB_OFFLINE=1``), download failed, or a required file is missing.
    """
    ref = str(ref).strip()
    if not ref:
        raise CheckpointError(f"empty checkpoint reference; {missing_hint}")
    if _looks_like_path(ref):
        return _check_dir(Path(ref).expanduser(), ref, missing_hint)
    try:
        local = _snapshot(ref, REQUIRED_FILES, timeout)
    except Exception as e:  # HTTP errors, gated or missing repos, disk errors
        raise CheckpointError(
            f"checkpoint '{ref}' could not be downloaded from the hub ({type(e).__name__}: {e}); "
            f"check the id (and `huggingface-cli login` for a private repo), or {missing_hint}"
        ) from e
    if local is None or _missing(local, REQUIRED_FILES):
        reason = "HF_HUB_OFFLINE is set" if hub_offline() else "the hub is unreachable"
        raise CheckpointError(f"checkpoint '{ref}' not found locally and {reason}; {missing_hint}")
    return local


def resolve_backbone(name: str, config_file: Path, timeout: float = HUB_TIMEOUT_S) -> Path:
    """Local folder of the VLM backbone a SmolVLA config names (``vlm_model_name``).

    Only the backbone's config, tokenizer and processor files are needed (the checkpoint's
    ``model.safetensors`` holds all weights), so a hub backbone is fetched without its weights.
    """
    where = f"vlm_model_name '{name}' in {config_file}"
    if _looks_like_path(name):
        path = Path(name).expanduser()
        if not (path / CONFIG_FILE).is_file():
            raise CheckpointError(
                f"{where}: no backbone folder with a config.json there; restore that folder or "
                "edit vlm_model_name to a local SmolVLM folder or hub id"
            )
        return path
    how = (
        f"on a connected machine run `huggingface-cli download {name} --include "
        + " ".join(f"'{p}'" for p in BACKBONE_PATTERNS)
        + "` (fills the Hugging Face cache), or edit vlm_model_name to a local folder"
    )
    try:
        local = _snapshot(name, (CONFIG_FILE,), timeout, allow_patterns=BACKBONE_PATTERNS)
    except Exception as e:
        raise CheckpointError(f"{where}: download failed ({type(e).__name__}: {e}); {how}") from e
    if local is None or not (local / CONFIG_FILE).is_file():
        reason = "HF_HUB_OFFLINE is set" if hub_offline() else "the hub is unreachable"
        raise CheckpointError(
            f"{where}: the backbone's config and tokenizer are not in the local cache and {reason}; {how}"
        )
    return local


# --------------------------------------------------------------------------- devices, dtypes


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` if available, else ``mps``, else ``cpu``; an explicit device is checked.

    Raises:
        ValueError: unknown device, or the requested one is not available on this machine.
    """
    import torch

    device = validate_device(device)
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device '{device}' requested but CUDA is not available here; use device:=cpu or auto")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' requested but MPS is not available here; use device:=cpu or auto")
    return device


def resolve_dtype(dtype: str, device: str, cpu_bf16: bool = False) -> str:
    """The dtype a policy runs in on a resolved ``device``.

    Rule for ``auto``: ``bfloat16`` on a CUDA device that supports it
    (``torch.cuda.is_bf16_supported()``); on the CPU ``bfloat16`` only when ``cpu_bf16`` is set
    (the variant allows it) and the CPU has native bf16 instructions
    (:func:`vla_ros.policy.speed.cpu_has_native_bf16`: ``avx512_bf16`` or ``amx_bf16`` in the
    x86 flags, ``bf16`` on Arm; without them bf16 is emulated and slower than float32);
    ``float32`` everywhere else (MPS included). An explicit ``float32`` / ``bfloat16`` is kept,
    except ``bfloat16`` on a CUDA device without bf16 support.

    Raises:
        ValueError: unknown dtype, or bf16 asked of a CUDA device that lacks it.
    """
    import torch

    from vla_ros.policy.speed import cpu_has_native_bf16

    value = str(dtype).strip().lower()
    if value not in DTYPES:
        raise ValueError(f"dtype: invalid value '{dtype}'; valid: {', '.join(DTYPES)}")
    if value == "bfloat16" and device.startswith("cuda") and not torch.cuda.is_bf16_supported():
        raise ValueError(f"dtype 'bfloat16' requested but device '{device}' does not support it; use dtype:=float32")
    if value != "auto":
        return value
    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    if device == "cpu" and cpu_bf16 and cpu_has_native_bf16():
        return "bfloat16"
    return "float32"


# --------------------------------------------------------------------------- loading


def _read_policy_type(config_file: Path) -> str:
    try:
        data = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{config_file}: not a readable JSON policy config ({e})") from e
    if not isinstance(data, dict) or "type" not in data:
        raise CheckpointError(f"{config_file}: not a LeRobot policy config (no 'type' field)")
    return str(data["type"])


def _weight_keys(weights_file: Path) -> set[str]:
    from safetensors import safe_open

    with open(weights_file, "rb") as f:
        head = f.read(64)
    if not head:
        raise CheckpointError(f"{weights_file}: the file is empty; download or copy the checkpoint again")
    if head.startswith(b"version https://git-lfs"):
        raise CheckpointError(
            f"{weights_file}: a Git LFS pointer, not the weights (the repository was cloned without LFS); "
            "run `git lfs pull` in it, or download the checkpoint with `huggingface-cli download`"
        )
    try:
        with safe_open(str(weights_file), framework="pt") as f:
            return set(f.keys())
    except Exception as e:
        raise CheckpointError(
            f"{weights_file}: cannot be read as safetensors ({e}); the file is corrupt or truncated: "
            "download or copy the checkpoint again"
        ) from e


def load_policy(checkpoint_dir: str | Path, device: str = "auto", dtype: str = "auto") -> LoadedPolicy:
    """Load a local LeRobot SmolVLA checkpoint directory with LeRobot's own API.

    Args:
        checkpoint_dir: A directory from :func:`resolve_checkpoint` (hub snapshots and local
            directories alike): ``config.json``, ``model.safetensors``, ``policy_preprocessor.json``,
            ``policy_postprocessor.json`` and the processors' state files.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:<n>`` or ``mps``.
        dtype: ``auto``, ``float32`` or ``bfloat16`` (of the VLM backbone; the action expert
            stays float32, as in LeRobot).

    Raises:
        CheckpointError: a missing or corrupt file, a config of another policy type, weights that
            do not fit the config, a backbone that cannot be found. The message names the file.
        ValueError: an unavailable device or an invalid dtype.
    """
    import torch
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

    directory = _check_dir(Path(checkpoint_dir).expanduser(), str(checkpoint_dir), DEFAULT_MISSING_HINT)
    config_file, weights_file = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    missing = _missing(directory, (PREPROCESSOR_FILE, POSTPROCESSOR_FILE))
    if missing:
        raise CheckpointError(
            f"checkpoint directory '{directory}' has no {' and no '.join(missing)}: checkpoints saved "
            "before LeRobot 0.4 keep normalization inside the model; convert it with "
            "`python -m lerobot.processor.migrate_policy_normalization --pretrained-path <dir>`"
        )
    policy_type = _read_policy_type(config_file)
    if policy_type != "smolvla":
        raise CheckpointError(
            f"{config_file}: policy type '{policy_type}', but vla_ros runs SmolVLA checkpoints "
            "(type 'smolvla'); pass checkpoint:=<dir> of a SmolVLA checkpoint"
        )
    file_keys = _weight_keys(weights_file)
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)

    try:
        config = PreTrainedConfig.from_pretrained(directory)
    except Exception as e:
        raise CheckpointError(f"{config_file}: cannot be parsed as a SmolVLA config ({e})") from e
    if not isinstance(config, SmolVLAConfig):
        raise CheckpointError(f"{config_file}: parsed as {type(config).__name__}, not SmolVLAConfig")
    absent_features = [
        what for what, ft in (("'observation.state' input feature", config.robot_state_feature),
                              ("'action' output feature", config.action_feature),
                              ("image input feature ('observation.images.<camera>')", config.image_features or None))
        if ft is None
    ]
    if absent_features:
        raise CheckpointError(
            f"{config_file}: has no {' and no '.join(absent_features)}; a SmolVLA checkpoint saved by LeRobot "
            "training lists them in input_features / output_features"
        )
    config.device = device
    # model.safetensors holds every weight; loading the VLM's pretrained weights first is wasted work.
    config.load_vlm_weights = False
    config.vlm_model_name = str(resolve_backbone(config.vlm_model_name, config_file))

    try:
        policy = SmolVLAPolicy.from_pretrained(directory, config=config)
    except Exception as e:
        raise CheckpointError(f"{weights_file}: does not fit {config_file} ({type(e).__name__}: {e})") from e
    model_keys = set(policy.state_dict())
    absent = sorted(model_keys - file_keys)
    if len(absent) > len(model_keys) // 2:
        raise CheckpointError(
            f"{weights_file}: {len(absent)} of {len(model_keys)} SmolVLA weights are absent "
            f"(e.g. {absent[:3]}); it was not saved from this config"
        )
    if absent:
        logger.warning("%s: %d weights absent, left at their initial values: %s", weights_file, len(absent), absent[:5])
    if dtype == "bfloat16":
        policy.model.vlm_with_expert.vlm.to(torch.bfloat16)
    policy.eval()

    tokenizer = policy.model.vlm_with_expert.processor.tokenizer
    try:
        preprocessor, postprocessor = make_pre_post_processors(
            config,
            pretrained_path=str(directory),
            preprocessor_overrides={
                "device_processor": {"device": device},
                "tokenizer_processor": {"tokenizer": tokenizer},
            },
        )
    except Exception as e:
        raise CheckpointError(
            f"{directory / PREPROCESSOR_FILE} / {POSTPROCESSOR_FILE}: cannot be loaded ({type(e).__name__}: {e})"
        ) from e
    return LoadedPolicy(policy, preprocessor, postprocessor, directory, device, dtype)
