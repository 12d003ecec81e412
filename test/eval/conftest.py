"""Eval-layer fixtures: mock-robot sessions written as real rosbag2 files, the tiny model."""
from __future__ import annotations

import pytest

from vla_ros.eval.synthetic import write_session
from vla_ros.robots import load_robot

#: The order and extra joint a driver might publish (names matched, extras ignored).
SHUFFLED = ["gripper", "elbow_flex", "shoulder_pan", "wrist_roll", "shoulder_lift", "wrist_flex"]


@pytest.fixture(scope="session")
def robot():
    return load_robot("so100")


@pytest.fixture(scope="session")
def bags(tmp_path_factory):
    """name -> path of a 3 s SO-100 session; every variant carries the same motion and images."""
    root = tmp_path_factory.mktemp("bags")
    variants = {
        "clean": {},
        "sqlite3": {"storage": "sqlite3"},
        "bgr8": {"encoding": "bgr8"},
        "png": {"compressed": "png"},
        "messy": {"storage": "sqlite3", "encoding": "bgr8", "joint_order": SHUFFLED, "extra_joints": ["base_yaw"],
                  "duplicate_every": 4, "swap_every": 5},
        "no_commands": {"parts": ("cameras", "joint_states", "instruction", "chunks")},
    }
    return {name: write_session(root / name, seconds=3.0, **kw).path for name, kw in variants.items()}


@pytest.fixture(scope="session")
def tiny(robot):
    """The tiny model for the SO-100 through the policy runtime (built once into the test cache)."""
    from vla_ros.eval.evaluate import load_runtimes

    return load_runtimes(robot, ["tiny"], num_threads=1)
