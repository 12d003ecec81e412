"""The transport port and its backends (rclpy, dds, inproc), chosen by VLA_ROS_TRANSPORT."""
from __future__ import annotations

import importlib.util
import os
from typing import Any, Mapping

from .port import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS, STATE_QOS, Port, QoS

BACKENDS = ("rclpy", "dds", "inproc")


def default_backend() -> str:
    """``$VLA_ROS_TRANSPORT``, else rclpy when importable, else dds."""
    name = os.environ.get("VLA_ROS_TRANSPORT", "").strip().lower()
    if name:
        if name not in BACKENDS:
            raise ValueError(f"VLA_ROS_TRANSPORT={name!r} is not one of {', '.join(BACKENDS)}")
        return name
    return "rclpy" if importlib.util.find_spec("rclpy") is not None else "dds"


def make_port(
    node_name: str,
    backend: str | None = None,
    *,
    namespace: str = "",
    parameters: Mapping[str, Any] | None = None,
    remappings: Mapping[str, str] | None = None,
    argv: list[str] | None = None,
) -> Port:
    """A port for ``node_name`` on ``backend`` (default: :func:`default_backend`).

    ``parameters`` and ``remappings`` apply to dds/inproc; the rclpy backend reads them from
    ``argv`` (``--ros-args ...``) like any ROS 2 node.
    """
    backend = backend or default_backend()
    if backend == "inproc":
        from .inproc import InprocPort

        return InprocPort(node_name, namespace, parameters, remappings=remappings)
    if backend == "dds":
        from .dds import DdsPort

        return DdsPort(node_name, namespace, parameters, remappings=remappings)
    if backend == "rclpy":
        from .rclpy_backend import RclpyPort

        return RclpyPort(node_name, namespace, argv=argv)
    raise ValueError(f"unknown transport backend {backend!r}; valid: {', '.join(BACKENDS)}")


__all__ = [
    "BACKENDS", "LATCHED_QOS", "RELIABLE_QOS", "SENSOR_QOS", "STATE_QOS", "Port", "QoS",
    "default_backend", "make_port",
]
