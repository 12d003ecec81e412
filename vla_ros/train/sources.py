"""Starting checkpoints (``--init``, ``--teacher``): a model variant name, a hub id or a directory.

Loaded with the policy layer's own code (``resolve_checkpoint`` / ``load_policy``), in float32 for
training. The ``tiny`` variant is built for the dataset's robot (its state/action dimension,
cameras and normalization stats), so the train commands run fully offline.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vla_ros.policy import RobotDims
from vla_ros.policy.loading import CONFIG_FILE, LoadedPolicy, load_policy, resolve_backbone, resolve_checkpoint
from vla_ros.policy.variants import available_variants, load_variant

logger = logging.getLogger(__name__)


@dataclass
class Source:
    """A loaded starting checkpoint.

    Args:
        loaded: The policy and its processors (float32, on the training device).
        reference: What the user passed (variant name, hub id or directory).
        directory: The local checkpoint directory.
        backbone_name: ``vlm_model_name`` as saved in the checkpoint (hub id or folder).
        backbone_dir: The backbone's local folder (config + tokenizer).
    """

    loaded: LoadedPolicy
    reference: str
    directory: Path
    backbone_name: str
    backbone_dir: Path

    @property
    def policy(self) -> Any:
        return self.loaded.policy

    @property
    def backbone_is_local(self) -> bool:
        return Path(self.backbone_name).expanduser().exists()


def dataset_dims(root: Path) -> RobotDims:
    """The robot a LeRobotDataset was recorded on: dims, cameras, and its stats for normalization."""
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata

    meta = LeRobotDatasetMetadata(f"local/{root.name}", root=root)
    features = meta.features
    cams = [k for k, v in features.items() if v["dtype"] in ("image", "video")]
    if "observation.state" not in features or "action" not in features or not cams:
        raise ValueError(f"dataset '{root}' needs observation.state, action and at least one camera; "
                         f"it has {sorted(features)}")
    shape = features[cams[0]]["shape"]
    hwc = tuple(shape) if shape[-1] == 3 else (shape[1], shape[2], shape[0])

    def stat(key: str, name: str, floor: float = 0.0):
        values = np.asarray(meta.stats[key][name], dtype=np.float64).reshape(-1)
        return tuple(float(max(v, floor)) for v in values)

    return RobotDims(
        state_dim=int(features["observation.state"]["shape"][0]),
        action_dim=int(features["action"]["shape"][0]),
        image_keys=tuple(cams),
        image_shape=(3, int(hwc[0]), int(hwc[1])),
        state_mean=stat("observation.state", "mean"),
        state_std=stat("observation.state", "std", 1e-3),
        action_mean=stat("action", "mean"),
        action_std=stat("action", "std", 1e-3),
    )


def load_source(reference: str, *, device: str = "auto", dataset_root: Path | None = None,
                option: str = "--init") -> Source:
    """Load a starting checkpoint for training.

    Args:
        reference: A model variant (``tiny``, ``full``, ``frozen``, ``l1``, ``distilled``), a hub id
            or a LeRobot checkpoint directory.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:<n>`` or ``mps``.
        dataset_root: The dataset (the ``tiny`` variant is built for its robot).
        option: The command-line option that named it (for error messages).
    """
    from vla_ros.policy.tiny import TinyPolicyConfig, ensure_tiny_checkpoint

    reference = str(reference).strip()
    if not reference:
        raise ValueError(f"{option}: empty; pass a model variant name, a hub id or a checkpoint directory")
    if reference in available_variants() and not Path(reference).exists():
        variant = load_variant(reference)
        if variant.builds_offline:
            if dataset_root is None:
                raise ValueError(f"{option} {reference}: built for a robot; pass --dataset")
            directory = ensure_tiny_checkpoint(dataset_dims(dataset_root), TinyPolicyConfig.from_options(variant.build))
        else:
            directory = resolve_checkpoint(variant.checkpoint, missing_hint=variant.missing_hint)
    else:
        directory = resolve_checkpoint(
            reference, missing_hint=f"pass {option} <a model variant ({', '.join(available_variants())}), "
                                    "a hub id or a LeRobot checkpoint directory>")
    loaded = load_policy(directory, device=device, dtype="float32")
    saved = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
    backbone_name = str(saved.get("vlm_model_name", loaded.config.vlm_model_name))
    backbone_dir = Path(loaded.config.vlm_model_name)  # load_policy resolved it to a local folder
    if not backbone_dir.is_dir():
        backbone_dir = resolve_backbone(backbone_name, directory / CONFIG_FILE)
    return Source(loaded, reference, directory, backbone_name, backbone_dir)
