"""The environment that keeps Cyclone DDS on loopback (tests, benchmarks, the ROS-free launcher).

``config/dds/loopback.xml`` restricts Cyclone DDS to the ``lo`` interface, without multicast,
discovering peers on 127.0.0.1 only. Cyclone reads its configuration from ``CYCLONEDDS_URI``
when the first DomainParticipant of a process is created, so set it in the environment of the
processes you start (or in this process before anything touches DDS).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from ..paths import config_dir

PROFILE = "loopback.xml"


def loopback_profile() -> Path:
    """Path of the loopback-only Cyclone DDS profile."""
    path = config_dir("dds") / PROFILE
    if not path.is_file():
        raise FileNotFoundError(f"Cyclone DDS loopback profile {path} is missing; reinstall vla_ros")
    return path


def loopback_uri() -> str:
    """``file://...`` URI of the loopback profile, the form CYCLONEDDS_URI takes."""
    return loopback_profile().resolve().as_uri()


def loopback_env(base_env: Mapping[str, str] | None = None, force: bool = False) -> dict[str, str]:
    """A copy of ``base_env`` (default: ``os.environ``) with CYCLONEDDS_URI set to the loopback
    profile. A CYCLONEDDS_URI already there is kept (the user chose a network) unless ``force``."""
    env = dict(os.environ if base_env is None else base_env)
    if force or not env.get("CYCLONEDDS_URI", "").strip():
        env["CYCLONEDDS_URI"] = loopback_uri()
    return env


def use_loopback(force: bool = False) -> str:
    """Apply :func:`loopback_env` to this process's environment; returns the CYCLONEDDS_URI in
    effect. Call it before the first DDS participant of the process is created."""
    uri = loopback_env(force=force)["CYCLONEDDS_URI"]
    os.environ["CYCLONEDDS_URI"] = uri
    return uri
