"""Where the package's data (msg/, config/, launch/) lives, however it was installed.

Search order: ``$VLA_ROS_SHARE``; the ament share directory (``colcon build``); the source tree
(``pip install -e .`` or a checkout); ``<prefix>/share/vla_ros`` (``pip install .``).
"""
from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path

PACKAGE = "vla_ros"


def _candidates() -> list[Path]:
    out: list[Path] = []
    env = os.environ.get("VLA_ROS_SHARE")
    if env:
        out.append(Path(env))
    try:  # only present on a ROS 2 install; imported lazily
        from ament_index_python.packages import get_package_share_directory

        out.append(Path(get_package_share_directory(PACKAGE)))
    except Exception:
        pass
    out.append(Path(__file__).resolve().parent.parent)
    out.append(Path(sys.prefix) / "share" / PACKAGE)
    return out


@lru_cache(maxsize=None)
def share_dir() -> Path:
    """The directory holding ``msg/`` and ``config/``."""
    for cand in _candidates():
        if (cand / "config" / "robots").is_dir() and (cand / "msg").is_dir():
            return cand
    raise FileNotFoundError(
        "vla_ros data (msg/, config/) not found; reinstall the package or set VLA_ROS_SHARE "
        "to the directory that holds them"
    )


def config_dir(kind: str) -> Path:
    """``config/<kind>`` (``robots``, ``models``, ``dds``, ``params``)."""
    return share_dir() / "config" / kind


def msg_dir() -> Path:
    return share_dir() / "msg"


def cache_dir() -> Path:
    """Per-user cache (tiny models built offline, ...): ``$VLA_ROS_CACHE`` or XDG cache."""
    env = os.environ.get("VLA_ROS_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / PACKAGE
