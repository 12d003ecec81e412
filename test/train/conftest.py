"""Train-layer fixtures: a small synthetic LeRobotDataset and a tiny teacher trained briefly on it."""
from __future__ import annotations

from pathlib import Path

import pytest

TEACHER_STEPS = 6


@pytest.fixture(scope="session")
def train_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("train")


@pytest.fixture(scope="session")
def so100_dims():
    """The SO-100 as its policies see it (6 joints, cameras top and wrist), from its robot file."""
    from vla_ros.policy import RobotDims
    from vla_ros.robots import load_robot

    return RobotDims.from_robot_spec(load_robot("so100"))


@pytest.fixture(scope="session")
def dataset_dir(train_root, so100_dims) -> Path:
    """4 episodes x 12 frames, two 48x64 cameras (LeRobotDataset v3, written with LeRobot's recorder)."""
    from vla_ros.train.synthetic import write_synthetic_dataset

    root = train_root / "dataset"
    write_synthetic_dataset(root, so100_dims, episodes=4, frames=12, image_hw=(48, 64), seed=1)
    return root


@pytest.fixture(scope="session")
def tiny_teacher_config():
    """A tiny SmolVLA with 4 VLM/expert layers and short chunks (so there is something to distill)."""
    from vla_ros.policy.tiny import TinyPolicyConfig

    return TinyPolicyConfig(text_layers=4, vision_layers=2, chunk_size=10, num_steps=4)


@pytest.fixture(scope="session")
def tiny_init(train_root, so100_dims, tiny_teacher_config) -> Path:
    from vla_ros.policy.tiny import ensure_tiny_checkpoint

    return ensure_tiny_checkpoint(so100_dims, tiny_teacher_config, root=train_root / "models")


@pytest.fixture(scope="session")
def teacher_run(train_root, dataset_dir, tiny_init):
    """The tiny model fine-tuned briefly (flow) on the dataset: the distillation teacher."""
    from vla_ros.train.finetune import finetune
    from vla_ros.train.loop import RunOptions

    return finetune(dataset_dir, "flow", RunOptions(train_root / "teacher", steps=TEACHER_STEPS, batch_size=4,
                                                    lr=1e-3, progress=False), init=str(tiny_init), device="cpu")


@pytest.fixture(scope="session")
def teacher_policy(teacher_run):
    from vla_ros.policy.loading import load_policy

    return load_policy(teacher_run.model_dir, device="cpu", dtype="float32")
