"""Embodiments: robot specs from config/robots/*.yaml and one driver module per robot.

A robot's ``family`` (its name unless the YAML says otherwise) picks its module: ``so100``,
``aloha`` or ``rby1``; any other robot is served like the SO-100's ros2_control path (one
joint_trajectory_controller) and the mock arm. Each module lists its ``DRIVERS`` (``mock`` first)
and provides the bridge's ``command_output`` and, where the state publisher hosts the hardware,
``hardware``.
"""
from __future__ import annotations

import importlib
from functools import lru_cache
from types import ModuleType
from pathlib import Path

import yaml

from ..core.embodiment import RobotSpec, SpecError
from ..paths import config_dir


def available_robots() -> list[str]:
    return sorted(p.stem for p in config_dir("robots").glob("*.yaml"))


@lru_cache(maxsize=None)
def load_robot(name_or_path: str) -> RobotSpec:
    """The spec of a robot by name (``so100``) or by the path of a YAML file."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = config_dir("robots") / f"{name_or_path}.yaml"
        if not path.is_file():
            raise SpecError(
                f"unknown robot {name_or_path!r}; valid robots: {', '.join(available_robots())} "
                f"(or the path of a robot YAML file)"
            )
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"cannot read robot description {path}: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping at the top level")
    return RobotSpec.from_dict(data, source=str(path))


FAMILIES = ("so100", "aloha", "rby1")


def robot_module(spec: RobotSpec) -> ModuleType:
    """The driver module of a robot (so100 for a family this version does not know)."""
    family = spec.family if spec.family in FAMILIES else "so100"
    return importlib.import_module(f"{__name__}.{family}")


def drivers(spec: RobotSpec) -> tuple[str, ...]:
    """The drivers a robot can run with, ``mock`` first."""
    return tuple(robot_module(spec).DRIVERS)


def resolve_driver(spec: RobotSpec, driver: str = "", hardware: str = "real") -> str:
    """``driver`` checked against the robot's drivers; empty: ``mock`` for mock hardware, else the
    YAML's ``real_driver``."""
    name = driver or ("mock" if hardware == "mock" else spec.real_driver)
    valid = drivers(spec)
    if name not in valid:
        raise SpecError(f"robot {spec.name} has no driver {name!r}; valid drivers: {', '.join(valid)}")
    if hardware == "mock" and name != "mock":
        raise SpecError(f"hardware:=mock runs the mock driver; driver {name!r} needs hardware:=real")
    if hardware == "real" and name == "mock":
        raise SpecError("hardware:=real needs a real driver; use hardware:=mock for the mock arm")
    return name


def needs_state_publisher(spec: RobotSpec, driver: str) -> bool:
    """Whether joint_states come from our state publisher (else from the robot's own stack)."""
    return driver in robot_module(spec).STATE_PUBLISHER_DRIVERS


def command_output(port, spec: RobotSpec, driver: str, controller: str = ""):
    """The bridge's output to the robot's command interface for ``driver``."""
    return robot_module(spec).command_output(port, spec, driver, controller)


__all__ = ["FAMILIES", "RobotSpec", "SpecError", "available_robots", "command_output", "drivers",
           "load_robot", "needs_state_publisher", "resolve_driver", "robot_module"]
