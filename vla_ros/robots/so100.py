"""SO-100 / SO-101 (Feetech STS3215): ros2_control or LeRobot's SO follower class.

- ``driver: ros2_control``: the bridge sends trajectory_msgs/JointTrajectory to
  ``<controller>/joint_trajectory`` (a joint_trajectory_controller over a Feetech ros2_control
  hardware interface); joint_states come from ros2_control's joint_state_broadcaster.
- ``driver: lerobot``: the state publisher hosts :class:`LeRobotSOFollower`, LeRobot's own
  ``SOFollower`` robot class (serial port, id and calibration directory as parameters), follows
  the same trajectory topic and publishes joint_states.
- ``driver: mock``: the mock arm behind the same trajectory topic.

Units: LeRobot's SO follower (``use_degrees=True``, what LeRobot datasets record) reads and writes
the five arm joints in degrees (0 at the middle of the calibrated range) and the gripper as
0..100 over its calibrated range; ROS topics carry radians. The conversion happens here only
(:func:`lerobot_to_si`, :func:`si_to_lerobot`); feature names are LeRobot's (``shoulder_pan.pos``).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..core.embodiment import RobotSpec, SpecError
from .base import CommandOutput, DriverError, HardwareDriver, TrajectoryOutput, section, single_trajectory

DRIVERS = ("mock", "ros2_control", "lerobot")
#: drivers whose joint states the state publisher provides (ros2_control has its broadcaster)
STATE_PUBLISHER_DRIVERS = ("mock", "lerobot")
#: the SO follower's motors (LeRobot 0.4.4 so_follower.py), in bus id order 1..6
MOTORS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
GRIPPER = "gripper"
FOLLOWER_TYPES = ("so100_follower", "so101_follower")


def feature(motor: str) -> str:
    """LeRobot's observation/action feature name of a motor (``shoulder_pan.pos``)."""
    return f"{motor}.pos"


def _check_joints(spec: RobotSpec) -> None:
    if sorted(spec.joint_names) != sorted(MOTORS):
        raise SpecError(f"robot {spec.name}: the SO follower has joints {list(MOTORS)}; the YAML lists "
                        f"{spec.joint_names}")


def lerobot_to_si(spec: RobotSpec, values: Mapping[str, float]) -> np.ndarray:
    """LeRobot SO follower values (``{'shoulder_pan.pos': deg, ..., 'gripper.pos': 0..100}``) ->
    radians in the spec's joint order. Raises KeyError naming a missing feature."""
    out = np.empty(spec.dof)
    for i, joint in enumerate(spec.joints):
        key = feature(joint.name)
        if key not in values:
            raise KeyError(f"LeRobot SO follower values lack {key!r} (got {sorted(values)})")
        v = float(values[key])
        if joint.name == GRIPPER:
            out[i] = joint.lower + v / 100.0 * (joint.upper - joint.lower)
        else:
            out[i] = math.radians(v)
    return out


def si_to_lerobot(spec: RobotSpec, positions: np.ndarray) -> dict[str, float]:
    """Radians (the spec's joint order) -> the SO follower's action dict (degrees, gripper 0..100)."""
    positions = np.asarray(positions, dtype=np.float64)
    if positions.shape != (spec.dof,):
        raise ValueError(f"expected {spec.dof} positions, got shape {positions.shape}")
    out = {}
    for joint, q in zip(spec.joints, positions):
        if joint.name == GRIPPER:
            out[feature(joint.name)] = float(100.0 * (q - joint.lower) / (joint.upper - joint.lower))
        else:
            out[feature(joint.name)] = float(math.degrees(q))
    return out


def command_output(port, spec: RobotSpec, driver: str, controller: str = "") -> CommandOutput:
    return TrajectoryOutput(port, [single_trajectory(spec, controller or spec.controller)])


def lerobot_settings(spec: RobotSpec, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``lerobot:`` section of the robot YAML with non-empty ``overrides`` applied."""
    cfg = {"type": "so100_follower", "port": "/dev/ttyACM0", "id": "so100_follower", "calibration_dir": "",
           "max_relative_target": 0.0}
    cfg.update(section(spec, "lerobot"))
    cfg.update({k: v for k, v in (overrides or {}).items() if v not in ("", None)})
    if cfg["type"] not in FOLLOWER_TYPES:
        raise SpecError(f"robot {spec.name}: lerobot.type {cfg['type']!r} is not one of {', '.join(FOLLOWER_TYPES)}")
    return cfg


class LeRobotSOFollower(HardwareDriver):
    """The SO follower through LeRobot's ``SOFollower`` robot class and its Feetech bus."""

    def __init__(self, spec: RobotSpec, port: str, robot_id: str, calibration_dir: str = "",
                 follower_type: str = "so100_follower", max_relative_target: float = 0.0) -> None:
        _check_joints(spec)
        try:
            from lerobot.robots.so_follower import SO100FollowerConfig, SO101FollowerConfig, SOFollower
        except ImportError as exc:  # lerobot is a dependency; the Feetech SDK is its 'feetech' extra
            raise DriverError(f"the lerobot SO follower driver needs LeRobot with Feetech support: "
                              f"pip install 'lerobot[feetech]==0.4.4' ({exc})") from None
        config_cls = SO101FollowerConfig if follower_type == "so101_follower" else SO100FollowerConfig
        kwargs: dict[str, Any] = {"port": port, "id": robot_id, "use_degrees": True}
        if calibration_dir:
            kwargs["calibration_dir"] = Path(calibration_dir).expanduser()
        if max_relative_target and max_relative_target > 0:
            kwargs["max_relative_target"] = float(max_relative_target)
        self.spec = spec
        self.config = config_cls(**kwargs)
        try:
            self.robot = SOFollower(self.config)
        except ImportError as exc:
            raise DriverError(f"the Feetech bus needs its SDK: pip install 'lerobot[feetech]==0.4.4' ({exc})") from None
        self.port = port

    @classmethod
    def from_spec(cls, spec: RobotSpec, overrides: Mapping[str, Any] | None = None) -> "LeRobotSOFollower":
        cfg = lerobot_settings(spec, overrides)
        return cls(spec, str(cfg["port"]), str(cfg["id"]), str(cfg["calibration_dir"] or ""), str(cfg["type"]),
                   float(cfg["max_relative_target"] or 0.0))

    @property
    def calibration_file(self) -> Path:
        return Path(self.robot.calibration_fpath)

    def connect(self) -> None:
        robot = self.robot
        if not robot.calibration:
            raise DriverError(
                f"no calibration for SO follower id '{self.config.id}' ({self.calibration_file} not found); "
                f"calibrate it once with: lerobot-calibrate --robot.type={self.config.type} "
                f"--robot.port={self.port} --robot.id={self.config.id}")
        if not Path(self.port).exists():
            raise DriverError(f"serial port {self.port} does not exist: connect the SO follower's bus "
                              f"adapter and pass its port (lerobot-find-port lists them)")
        try:
            robot.connect(calibrate=False)  # never prompt: a node has no terminal
        except (ConnectionError, OSError) as exc:
            raise DriverError(f"cannot connect to the SO follower on {self.port}: {exc}".strip()) from None
        if not robot.is_calibrated:
            robot.disconnect()
            raise DriverError(
                f"the motors' calibration differs from {self.calibration_file}; recalibrate with "
                f"lerobot-calibrate --robot.type={self.config.type} --robot.port={self.port} --robot.id={self.config.id}")

    def read(self) -> np.ndarray:
        return lerobot_to_si(self.spec, self.robot.get_observation())

    def write(self, positions: np.ndarray) -> None:
        self.robot.send_action(si_to_lerobot(self.spec, positions))

    def disconnect(self) -> None:
        if self.robot.is_connected:
            self.robot.disconnect()


def hardware(spec: RobotSpec, driver: str, overrides: Mapping[str, Any]) -> HardwareDriver | None:
    if driver == "lerobot":
        return LeRobotSOFollower.from_spec(spec, {"port": overrides.get("serial_port"),
                                                  "id": overrides.get("robot_id"),
                                                  "calibration_dir": overrides.get("calibration_dir")})
    return None
