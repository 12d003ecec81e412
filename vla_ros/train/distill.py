"""Shallow-pi distillation (arXiv 2601.20262) of a SmolVLA teacher into a shallower student.

The student is the teacher with fewer layers (:mod:`vla_ros.train.student`), initialised from the
teacher's evenly chosen layers, and trained with ground-truth flow matching + the teacher's
velocity at the same noise and time + attention transfer on the action tokens at the middle
layers (:class:`vla_ros.train.objectives.Distillation`). The teacher is frozen, in eval mode.

Beyond the paper: on CPUs the vision tower takes about half of SmolVLA's time, so the student may
also keep fewer vision layers (``vision_layers``) and see smaller images (``image_size``).

The student uses the teacher's pre/post-processors (same normalization), and is saved as a LeRobot
checkpoint with its own config and backbone folder; it loads as ``model:=distilled``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from vla_ros.train import data as train_data
from vla_ros.train import loop
from vla_ros.train.objectives import Distillation, DistillWeights
from vla_ros.train.sources import load_source
from vla_ros.train.student import StudentPlan, build_student, plan_student

logger = logging.getLogger(__name__)


def default_output() -> Path:
    """Where ``model:=distilled`` looks (config/models/distilled.yaml): ``<cache>/models/distilled``."""
    from vla_ros.policy.variants import load_variant

    return Path(load_variant("distilled").checkpoint)


def distill(teacher: str, dataset: str | Path, options: loop.RunOptions, *, vlm_layers: int,
            expert_layers: int | None = None, vision_layers: int | None = None, image_size: int | None = None,
            weights: DistillWeights = DistillWeights(), attention_pairs: int = 2, device: str = "auto",
            robot: str | None = None, episodes: Sequence[int] | None = None,
            student_hook=None) -> tuple[loop.RunResult, StudentPlan]:
    """Distill ``teacher`` into a student with ``vlm_layers`` VLM layers, trained on ``dataset``.

    Args:
        teacher: A model variant, a hub id or a checkpoint directory.
        dataset: A LeRobotDataset directory or a rosbag (converted first).
        options: Steps, batch size, learning rate, output, resumption.
        vlm_layers, expert_layers, vision_layers, image_size: The student (see
            :func:`vla_ros.train.student.plan_student`).
        weights: Weights of the ground-truth, velocity and attention terms.
        attention_pairs: Middle layers used for attention transfer.
        device: Training device.
        robot: The robot of a rosbag (for the converter).
        episodes: Episodes of the dataset to train on; ``None``: all.
        student_hook: Called with the student before training (tests, benchmarks).

    Returns:
        The run's result and the student's layer plan.
    """
    loop.check_output(options)
    root = train_data.resolve_dataset(dataset, options.output, robot)
    source = load_source(teacher, device=device, dataset_root=root, option="--teacher")
    teacher_policy = source.policy
    plan = plan_student(teacher_policy, vlm_layers, expert_layers, vision_layers, image_size)
    for note in plan.notes:
        logger.warning("student layout: %s", note)
    backbone_dir = options.output / loop.BACKBONE_DIR
    student = build_student(teacher_policy, plan, source.backbone_dir, backbone_dir, seed=options.seed)
    if student_hook is not None:
        student_hook(student)
    ds = train_data.open_dataset(root, student.config, episodes=episodes, policy_name=f"--teacher '{teacher}'")
    pairs = plan.attention_pairs(attention_pairs) if weights.attention > 0 and attention_pairs > 0 else {}
    objective = Distillation(student, teacher_policy, weights, pairs)
    describe = {
        "name": f"distill {len(plan.vlm_layers)} VLM layers",
        "command": "distill",
        "variant": "distilled",
        "teacher": teacher,
        "teacher_dir": str(source.directory),
        "dataset": str(root),
        "plan": plan.to_dict(),
        "weights": {"gt": weights.gt, "velocity": weights.velocity, "attention": weights.attention},
        "attention_pairs": {str(k): v for k, v in pairs.items()},
    }
    result = loop.run(objective, source.loaded.preprocessor, source.loaded.postprocessor,
                      train_data.batches(ds, options.batch_size, seed=options.seed, num_workers=options.num_workers),
                      ds, options, backbone=str(backbone_dir), describe=describe)
    return result, plan


def parameter_counts(policy: Any) -> dict[str, int]:
    """Parameters of a SmolVLA by part (vision, language, expert, total)."""
    vwe = policy.model.vlm_with_expert
    vlm = vwe.get_vlm_model()
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    return {"vision": count(vlm.vision_model), "language": count(vlm.text_model),
            "expert": count(vwe.lm_expert), "total": count(policy)}
