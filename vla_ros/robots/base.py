"""What every robot module provides, and the pieces they share.

The controller bridge always does safety and chunk playback and hands SI joint commands (the
robot's joints, in the order of its YAML) to a :class:`CommandOutput`, which speaks the robot's
real command interface. The state publisher either hosts an in-process :class:`HardwareDriver`
(like ros2_control's controller manager hosts hardware), which follows the bridge's commands and
reads the joints, or relays the joint states of an external driver; with ``driver: mock`` it
emulates the real interface. Units change only inside drivers and outputs.

Robot modules work on a transport port they are handed (``port.publisher``, ``port.subscribe``,
``port.new``, with the port's default QoS: reliable, keep last 10, as ros2_control and the
Interbotix xs_sdk use); they never import a middleware.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..core.embodiment import RobotSpec, SpecError

#: ``on_command(names, positions)``: SI positions for the named joints (ours).
OnCommand = Callable[[list, np.ndarray], None]


class DriverError(RuntimeError, ValueError):
    """Hardware that cannot be reached or used; the message says what to check (a ValueError too,
    so a node started with unreachable hardware ends with this message, not a traceback)."""


class CommandOutput(abc.ABC):
    """Bridge side: sends SI commands for ``spec.joint_names`` to the robot's interface."""

    topics: tuple[str, ...] = ()

    @abc.abstractmethod
    def send(self, positions: np.ndarray, period: float) -> None:
        """Command ``positions`` (SI, the spec's joint order), reached in ``period`` seconds."""


class HardwareDriver(abc.ABC):
    """State-publisher side: an in-process hardware driver (SI in and out, the spec's order)."""

    @abc.abstractmethod
    def connect(self) -> None: ...

    @abc.abstractmethod
    def read(self) -> np.ndarray:
        """Measured positions (SI, the spec's joint order)."""

    @abc.abstractmethod
    def write(self, positions: np.ndarray) -> None:
        """Send the target positions (SI, the spec's joint order)."""

    def disconnect(self) -> None:
        pass


def section(spec: RobotSpec, key: str) -> dict[str, Any]:
    """A mapping from the robot YAML (``lerobot:``, ``sdk:``, ...), empty when absent."""
    value = spec.extra.get(key, {}) or {}
    if not isinstance(value, Mapping):
        raise SpecError(f"robot {spec.name}: '{key}' must be a mapping, got {value!r}")
    return dict(value)


def joint_indices(spec: RobotSpec, names: Sequence[str], where: str) -> list[int]:
    index = {n: i for i, n in enumerate(spec.joint_names)}
    missing = [n for n in names if n not in index]
    if missing:
        raise SpecError(f"robot {spec.name}: {where} names joints {missing} the robot does not have; "
                        f"joints: {spec.joint_names}")
    return [index[n] for n in names]


def duration(port, seconds: float):
    sec = int(seconds)
    return port.new("builtin_interfaces/msg/Duration", sec=sec, nanosec=int(round((seconds - sec) * 1e9)))


@dataclass
class TrajectoryTarget:
    """One joint_trajectory_controller: its topic, our joint indices, its joint names and an affine
    map to its units (``theirs = scale * ours + offset``)."""

    controller: str
    indices: list[int]
    names: list[str]
    scale: np.ndarray
    offset: np.ndarray
    topic_name: str = ""  # instead of <controller>/joint_trajectory

    @property
    def topic(self) -> str:
        return self.topic_name or f"{self.controller}/joint_trajectory"


class TrajectoryOutput(CommandOutput):
    """trajectory_msgs/JointTrajectory with one point per period, to one or more controllers (a
    ros2_control joint_trajectory_controller; the state publisher's in-process drivers and the
    mock follow the same message). Header stamp zero: the controller starts the point now."""

    def __init__(self, port, targets: Sequence[TrajectoryTarget]) -> None:
        self.port = port
        self.targets = list(targets)
        self.pubs = [port.publisher(t.topic, "trajectory_msgs/msg/JointTrajectory")
                     for t in self.targets]
        self.topics = tuple(port.resolve(t.topic) for t in self.targets)

    def send(self, positions: np.ndarray, period: float) -> None:
        positions = np.asarray(positions, dtype=np.float64)
        for target, pub in zip(self.targets, self.pubs):
            values = positions[target.indices] * target.scale + target.offset
            point = self.port.new("trajectory_msgs/msg/JointTrajectoryPoint", positions=values,
                                  time_from_start=duration(self.port, period))
            pub.publish(self.port.new("trajectory_msgs/msg/JointTrajectory", joint_names=target.names,
                                      points=[point]))


def single_trajectory(spec: RobotSpec, controller: str, topic: str = "") -> TrajectoryTarget:
    """Every joint of the robot, our names and units, to ``<controller>/joint_trajectory`` (or ``topic``)."""
    n = spec.dof
    return TrajectoryTarget(controller, list(range(n)), spec.joint_names, np.ones(n), np.zeros(n), topic)


def follow_trajectory(port, spec: RobotSpec, controller: str, on_command: OnCommand,
                      warn: Callable[[str, str], None]) -> None:
    """Subscribe ``<controller>/joint_trajectory`` and hand its last point to ``on_command``
    (what a joint_trajectory_controller does with a one-point trajectory)."""
    def _on(msg) -> None:
        if not msg.points:
            return
        positions = np.asarray(msg.points[-1].positions, dtype=np.float64)
        names = list(msg.joint_names)
        if len(positions) != len(names) or not np.all(np.isfinite(positions)):
            warn("bad_command", f"ignoring a trajectory command with non-finite or missing positions on {controller}")
            return
        on_command(names, positions)

    port.subscribe(f"{controller}/joint_trajectory", "trajectory_msgs/msg/JointTrajectory", _on)


class Target:
    """The latest commanded positions, merged by joint name (NaN: never commanded)."""

    def __init__(self, spec: RobotSpec) -> None:
        self.spec = spec
        self.q = np.full(spec.dof, np.nan)
        self.count = 0
        self._index = {n: i for i, n in enumerate(spec.joint_names)}

    def update(self, names: Sequence[str], positions: np.ndarray) -> list[str]:
        unknown = []
        for n, p in zip(names, positions):
            i = self._index.get(n)
            if i is None:
                unknown.append(n)
            elif np.isfinite(p):
                self.q[i] = float(p)
        self.count += 1
        return unknown

    @property
    def complete(self) -> bool:
        return bool(np.all(np.isfinite(self.q)))
