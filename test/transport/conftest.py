"""Fixtures for the transport tests.

Every DDS participant these tests create, in this process or in the peer processes they start,
uses the loopback-only Cyclone DDS profile (forced, whatever CYCLONEDDS_URI the caller has) and a
domain id of its own, so tests never touch the network and do not hear other test runs.
"""
from __future__ import annotations

import os
import random
import uuid

import pytest

from vla_ros.transport.dds_env import loopback_env

os.environ.update(loopback_env(force=True))
os.environ["ROS_DOMAIN_ID"] = str(random.randint(10, 99))

from dds_harness import Peer  # noqa: E402


@pytest.fixture
def peer():
    """``peer(*args)`` starts dds_peer.py with ``args``; all are killed at the end of the test."""
    started: list[Peer] = []

    def start(*args: str) -> Peer:
        p = Peer(*args)
        started.append(p)
        return p

    yield start
    for p in started:
        p.kill()


@pytest.fixture
def topic() -> str:
    """A topic name no other test (or test run) uses."""
    return f"test_{uuid.uuid4().hex[:12]}"
