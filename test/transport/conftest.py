"""Fixtures for the transport tests.

Every DDS participant these tests create, in this process or in the peer processes they start,
uses the loopback-only Cyclone DDS profile (forced, whatever CYCLONEDDS_URI the caller has) and,
while a test module of this directory runs, a domain id of its own, so the tests never touch the
network and do not hear other test runs.
"""
from __future__ import annotations

import os
import random
import uuid

import pytest

from dds_harness import Peer
from vla_ros.transport.dds_env import loopback_env

os.environ.update(loopback_env(force=True))


@pytest.fixture(scope="module", autouse=True)
def private_domain():
    """ROS_DOMAIN_ID for this module's processes (restored afterwards)."""
    from vla_ros.transport import dds

    saved = os.environ.get("ROS_DOMAIN_ID")
    if dds._Domain.participant is not None:  # a port someone left open: stay on its domain
        domain = dds._Domain.participant.domain_id
    else:
        domain = random.randint(10, 99)
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    yield domain
    if saved is None:
        os.environ.pop("ROS_DOMAIN_ID", None)
    else:
        os.environ["ROS_DOMAIN_ID"] = saved


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
