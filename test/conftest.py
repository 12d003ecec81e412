"""Shared test setup: a private cache for built models, loopback-only DDS for every process."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    # tests never touch the user's cache and never leave loopback
    os.environ.setdefault("VLA_ROS_CACHE", str(ROOT / ".pytest_cache" / "vla_ros"))
    os.environ["CYCLONEDDS_URI"] = (ROOT / "config" / "dds" / "loopback.xml").as_uri()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def so100():
    from vla_ros.robots import load_robot

    return load_robot("so100")
