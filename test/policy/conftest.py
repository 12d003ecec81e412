"""Policy-layer fixtures: one tiny SmolVLA checkpoint built per session into a private cache."""
from __future__ import annotations

from pathlib import Path

import pytest

from vla_ros.policy.robot_dims import RobotDims
from vla_ros.policy.variants import load_variant

IMAGE_KEYS = ("observation.images.top", "observation.images.wrist")


@pytest.fixture(scope="session")
def robot_dims() -> RobotDims:
    """A 6-joint arm in degrees with a 0..100 gripper and two cameras."""
    return RobotDims.from_limits(
        lower=[-110, -100, -100, -95, -157, 0], upper=[110, 100, 100, 95, 163, 100], image_keys=IMAGE_KEYS
    )


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> Path:
    """The VLA_ROS_CACHE of this session's policy tests (a fresh directory)."""
    return tmp_path_factory.mktemp("vla_ros_cache")


@pytest.fixture(scope="session")
def tiny_config():
    from vla_ros.policy.tiny import TinyPolicyConfig

    return TinyPolicyConfig.from_options(load_variant("tiny").build)


@pytest.fixture(scope="session")
def tiny_dir(tiny_cache, robot_dims, tiny_config):
    """The tiny checkpoint for ``robot_dims``, built once per session."""
    from vla_ros.policy.tiny import ensure_tiny_checkpoint

    return ensure_tiny_checkpoint(robot_dims, tiny_config, root=tiny_cache / "models")


@pytest.fixture
def use_tiny_cache(monkeypatch, tiny_cache, tiny_dir):
    """Point VLA_ROS_CACHE at the session cache (where ``tiny_dir`` already is)."""
    monkeypatch.setenv("VLA_ROS_CACHE", str(tiny_cache))
    return tiny_cache


@pytest.fixture(scope="session")
def runtime(tiny_cache, tiny_dir, robot_dims):
    """The tiny variant through make_runtime (finds the session build, loads it, warms it up)."""
    from vla_ros.policy.runtime import make_runtime

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VLA_ROS_CACHE", str(tiny_cache))
        return make_runtime("tiny", robot_dims=robot_dims)


@pytest.fixture
def hub_offline(monkeypatch, tmp_path):
    """No hub and an empty Hugging Face cache, whatever the machine has."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))
