"""Fine-tuning SmolVLA with the seed study's three strategies.

=============== ========================================= =================================
strategy        objective                                 trainable
=============== ========================================= =================================
``flow``        flow matching (LeRobot's squared error)   VLM (vision encoder included) + expert
``l1``          flow matching with the absolute error     VLM (vision encoder included) + expert
``frozen-vision`` flow matching (squared error)           VLM language layers + expert
=============== ========================================= =================================

The trainable parts are set with LeRobot's own flags (``train_expert_only=False``,
``freeze_vision_encoder``), saved in the checkpoint's config. As ``lerobot-train`` does when it
starts from a pretrained policy, the normalization stats become the dataset's.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vla_ros.train import data as train_data
from vla_ros.train import loop
from vla_ros.train.objectives import FlowMatching, L1Flow, Objective
from vla_ros.train.sources import Source, load_source

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Strategy:
    """A fine-tuning strategy: its objective, what is frozen, the model variant it makes."""

    name: str
    objective: type[Objective]
    freeze_vision_encoder: bool
    variant: str
    description: str


STRATEGIES = {
    s.name: s
    for s in (
        Strategy("flow", FlowMatching, False, "full",
                 "flow matching, vision encoder trainable (the seed study's baseline)"),
        Strategy("l1", L1Flow, False, "l1", "the flow-matching model trained with an L1 instead of a squared error"),
        Strategy("frozen-vision", FlowMatching, True, "frozen",
                 "flow matching with the vision encoder frozen (best at keeping visual-language knowledge)"),
    )
}


def set_trainable(policy: Any, *, train_expert_only: bool, freeze_vision_encoder: bool) -> None:
    """Apply LeRobot's fine-tuning flags to a loaded SmolVLA (config and ``requires_grad``)."""
    policy.config.train_expert_only = train_expert_only
    policy.config.freeze_vision_encoder = freeze_vision_encoder
    for p in policy.parameters():
        p.requires_grad_(True)
    vwe = policy.model.vlm_with_expert
    vwe.train_expert_only = train_expert_only
    vwe.freeze_vision_encoder = freeze_vision_encoder
    vwe.set_requires_grad()
    policy.model.set_requires_grad()


def dataset_processors(source: Source, dataset: Any) -> tuple[Any, Any]:
    """The source's saved pipelines with the dataset's normalization stats (as ``lerobot-train``)."""
    from lerobot.policies.factory import make_pre_post_processors

    config = source.loaded.config
    # per-feature statistics only (the frame "count" is not a per-joint value)
    stats = {feature: {k: v for k, v in entry.items() if k != "count"} for feature, entry in dataset.meta.stats.items()}
    tokenizer = source.policy.model.vlm_with_expert.processor.tokenizer
    return make_pre_post_processors(
        config,
        pretrained_path=str(source.directory),
        preprocessor_overrides={
            "device_processor": {"device": source.loaded.device},
            "tokenizer_processor": {"tokenizer": tokenizer},
            "normalizer_processor": {
                "stats": stats,
                "features": {**config.input_features, **config.output_features},
                "norm_map": config.normalization_mapping,
            },
        },
        postprocessor_overrides={
            "unnormalizer_processor": {
                "stats": stats, "features": config.output_features, "norm_map": config.normalization_mapping,
            },
        },
    )


def backbone_reference(source: Source, output: Path) -> str:
    """The saved ``vlm_model_name``: a hub id stays; a local backbone folder is copied into the run."""
    if not source.backbone_is_local:
        return source.backbone_name
    target = output / loop.BACKBONE_DIR
    if target.resolve() != source.backbone_dir.resolve():
        target.mkdir(parents=True, exist_ok=True)
        from vla_ros.train.student import copy_backbone

        copy_backbone(source.backbone_dir, target)
    return str(target)


def finetune(dataset: str | Path, strategy: str, options: loop.RunOptions, *, init: str = "tiny",
             device: str = "auto", robot: str | None = None) -> loop.RunResult:
    """Fine-tune ``init`` on ``dataset`` with ``strategy`` (see :data:`STRATEGIES`).

    Args:
        dataset: A LeRobotDataset directory, or a rosbag (converted first into ``<output>/dataset``).
        strategy: ``flow``, ``l1`` or ``frozen-vision``.
        options: Steps, batch size, learning rate, output directory, resumption.
        init: The starting checkpoint: a model variant, a hub id or a directory.
        device: Training device.
        robot: The robot of a rosbag (for the converter).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"--strategy '{strategy}': valid: {', '.join(STRATEGIES)}")
    chosen = STRATEGIES[strategy]
    loop.check_output(options)
    root = train_data.resolve_dataset(dataset, options.output, robot)
    source = load_source(init, device=device, dataset_root=root, option="--init")
    policy = source.policy
    set_trainable(policy, train_expert_only=False, freeze_vision_encoder=chosen.freeze_vision_encoder)
    ds = train_data.open_dataset(root, policy.config, policy_name=f"--init '{init}'")
    preprocessor, postprocessor = dataset_processors(source, ds)
    backbone = backbone_reference(source, options.output)
    describe = {
        "name": f"finetune {strategy}",
        "command": "finetune",
        "strategy": strategy,
        "description": chosen.description,
        "variant": chosen.variant,
        "init": init,
        "init_dir": str(source.directory),
        "dataset": str(root),
    }
    return loop.run(chosen.objective(policy), preprocessor, postprocessor,
                    train_data.batches(ds, options.batch_size, seed=options.seed, num_workers=options.num_workers),
                    ds, options, backbone=backbone, describe=describe)
