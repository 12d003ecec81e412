"""Rainbow Robotics RB-Y1: the rby1-sdk (in process) or the rby1_ros2 driver.

- ``driver: sdk``: the state publisher hosts :class:`Rby1Sdk`: ``rby1_sdk.create_robot(address,
  model)``, connect, power on, servo on, reset a control-manager fault, enable the control manager,
  open a command stream; each state period it reads ``get_state().position`` and streams the
  latest bridge command as one ``RobotCommandBuilder`` with a ``JointPositionCommandBuilder`` per
  arm (``set_minimum_time``, ``set_control_hold_time`` from the YAML ``sdk`` section; the torso
  and head are not commanded, so the control manager keeps them). The grippers are the Dynamixel
  pair on the robot's UPC (``rby1_sdk.DynamixelBus`` on ``/dev/rby1_gripper``), homed at connect
  to find their stroke, commanded as a normalized aperture (0 closed .. 1 open).
- ``driver: ros2``: the rby1_ros2 package's ros2_control hardware (rby1_hardware): the bridge sends
  trajectory_msgs/JointTrajectory to its ``right_arm_controller`` and ``left_arm_controller`` and
  to a joint_trajectory_controller over the finger joints (aperture -> metres of finger travel);
  the state publisher relays the driver's joint states (finger metres -> aperture).
- ``driver: mock``: the mock arm behind the sdk driver's interface (one trajectory topic).

``model`` (a | m | ub) selects the SDK's robot class and state layout; the arm joint names are the
same on the three models (rby1-sdk ``Model_A/M/UB.robot_joint_names``).
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import numpy as np

from ..core.embodiment import RobotSpec, SpecError
from .base import (CommandOutput, DriverError, HardwareDriver, TrajectoryOutput, TrajectoryTarget,
                   joint_indices, section, single_trajectory)

DRIVERS = ("mock", "sdk", "ros2")
STATE_PUBLISHER_DRIVERS = DRIVERS
MODELS = ("a", "m", "ub")
ARMS = ("right_arm", "left_arm")
GRIPPERS = ("right_gripper", "left_gripper")
log = logging.getLogger(__name__)


def model_name(spec: RobotSpec, override: str = "") -> str:
    model = str(override or spec.extra.get("model", "a")).lower()
    if model not in MODELS:
        raise SpecError(f"robot {spec.name}: model {model!r} is not one of {', '.join(MODELS)}")
    return model


def arm_joint_names(side: str) -> list[str]:
    return [f"{side}_{k}" for k in range(7)]


def sdk_settings(spec: RobotSpec, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    cfg = {"address": "192.168.30.1:50051", "power": ".*", "servo": ".*", "minimum_time": 0.03,
           "control_hold_time": 0.2, "stream_priority": 1, "gripper": "dynamixel",
           "gripper_device": "/dev/rby1_gripper", "gripper_ids": [0, 1], "gripper_open_at_max": False,
           "connect_retries": 5, "connect_timeout_ms": 1000}
    cfg.update(section(spec, "sdk"))
    cfg.update({k: v for k, v in (overrides or {}).items() if v not in ("", None)})
    if cfg["gripper"] not in ("dynamixel", "none"):
        raise SpecError(f"robot {spec.name}: sdk.gripper {cfg['gripper']!r} must be dynamixel or none")
    if float(cfg["minimum_time"]) <= 0 or float(cfg["control_hold_time"]) < 0:
        raise SpecError(f"robot {spec.name}: sdk.minimum_time must be > 0 and control_hold_time >= 0")
    return cfg


def _sdk():
    try:
        import rby1_sdk
    except ImportError as exc:
        raise DriverError(f"driver 'sdk' needs the rby1-sdk Python package: pip install rby1-sdk ({exc})") from None
    return rby1_sdk


def arm_command(rby, right: np.ndarray, left: np.ndarray, minimum_time: float, control_hold_time: float):
    """The SDK command that moves both arms to ``right`` / ``left`` (7 radians each) in at least
    ``minimum_time`` s and holds them ``control_hold_time`` s after the stream goes quiet."""

    def joint(q: np.ndarray):
        return (rby.JointPositionCommandBuilder()
                .set_command_header(rby.CommandHeaderBuilder().set_control_hold_time(control_hold_time))
                .set_minimum_time(minimum_time)
                .set_position(np.asarray(q, dtype=np.float64)))

    body = (rby.BodyComponentBasedCommandBuilder()
            .set_right_arm_command(rby.ArmCommandBuilder().set_command(joint(right)))
            .set_left_arm_command(rby.ArmCommandBuilder().set_command(joint(left))))
    return rby.RobotCommandBuilder().set_command(rby.ComponentBasedCommandBuilder().set_body_command(body))


class DynamixelGrippers:
    """The RB-Y1's two gripper motors on the UPC's Dynamixel bus, as a 0..1 aperture each.

    At connect the grippers are driven closed and open with a small current to find each one's
    encoder range; then they run in current-based position mode."""

    def __init__(self, rby, device: str, ids: list[int], open_at_max: bool) -> None:
        self.rby, self.device, self.ids, self.open_at_max = rby, device, [int(i) for i in ids], bool(open_at_max)
        self.bus = None
        self.min_q = np.full(2, np.inf)
        self.max_q = np.full(2, -np.inf)
        self.last = np.full(2, np.nan)

    def connect(self, homing_time: float = 6.0) -> None:
        import time

        bus = self.rby.DynamixelBus(self.device)
        if not bus.open_port():
            raise DriverError(f"cannot open the gripper bus {self.device} (it exists on the RB-Y1's UPC); "
                              f"run state_publisher there, or set sdk.gripper: none in the robot YAML")
        bus.set_baud_rate(self.rby.DynamixelBus.DefaultBaudrate)
        bus.set_torque_constant([1] * len(self.ids))
        dead = [i for i in self.ids if not bus.ping(i)]
        if dead:
            raise DriverError(f"gripper motor id(s) {dead} on {self.device} do not answer; check power "
                              f"(tool flange 12 V) and cabling")
        self.bus = bus
        bus.group_sync_write_torque_enable([(i, 0) for i in self.ids])
        bus.group_sync_write_operating_mode([(i, self.rby.DynamixelBus.CurrentControlMode) for i in self.ids])
        bus.group_sync_write_torque_enable([(i, 1) for i in self.ids])
        for direction in (1.0, -1.0):
            end = time.monotonic() + homing_time / 2
            while time.monotonic() < end:
                bus.group_sync_write_send_torque([(i, 0.3 * direction) for i in self.ids])
                self._read_raw()
                time.sleep(0.05)
        if not np.all(self.max_q - self.min_q > 1e-3):
            raise DriverError("gripper homing found no stroke; check that the grippers can move")
        bus.group_sync_write_torque_enable([(i, 0) for i in self.ids])
        bus.group_sync_write_operating_mode([(i, self.rby.DynamixelBus.CurrentBasedPositionControlMode) for i in self.ids])
        bus.group_sync_write_torque_enable([(i, 1) for i in self.ids])
        bus.group_sync_write_send_torque([(i, 5) for i in self.ids])

    def _read_raw(self) -> np.ndarray:
        q = np.full(2, np.nan)
        got = self.bus.group_fast_sync_read_encoder(self.ids)
        for dev, enc in (got or []):
            k = self.ids.index(dev)
            q[k] = enc
            self.min_q[k] = min(self.min_q[k], enc)
            self.max_q[k] = max(self.max_q[k], enc)
        return q

    def to_encoder(self, aperture: np.ndarray) -> np.ndarray:
        a = np.clip(np.asarray(aperture, dtype=np.float64), 0.0, 1.0)
        span = self.max_q - self.min_q
        return self.min_q + a * span if self.open_at_max else self.max_q - a * span

    def to_aperture(self, encoder: np.ndarray) -> np.ndarray:
        span = self.max_q - self.min_q
        a = (encoder - self.min_q) / span if self.open_at_max else (self.max_q - encoder) / span
        return np.clip(a, 0.0, 1.0)

    def read(self) -> np.ndarray:
        q = self._read_raw()
        a = self.to_aperture(q)
        self.last = np.where(np.isfinite(a), a, self.last)
        return self.last.copy()

    def write(self, aperture: np.ndarray) -> None:
        self.bus.group_sync_write_send_position(list(zip(self.ids, self.to_encoder(aperture).tolist())))

    def disconnect(self) -> None:
        if self.bus is not None:
            self.bus.group_sync_write_torque_enable([(i, 0) for i in self.ids])


class Rby1Sdk(HardwareDriver):
    """Both arms through an rby1-sdk command stream; grippers through :class:`DynamixelGrippers`."""

    def __init__(self, spec: RobotSpec, model: str, settings: Mapping[str, Any]) -> None:
        self.rby = _sdk()
        self.spec = spec
        self.model = model
        self.cfg = dict(settings)
        self.right = joint_indices(spec, arm_joint_names("right_arm"), "the right arm")
        self.left = joint_indices(spec, arm_joint_names("left_arm"), "the left arm")
        self.grippers_idx = joint_indices(spec, list(GRIPPERS), "the grippers")
        factory = {"a": self.rby.create_robot_a, "m": self.rby.create_robot_m, "ub": self.rby.create_robot_ub}[model]
        self.robot = factory(str(self.cfg["address"]))
        layout = type(self.robot).model()
        names = list(layout.robot_joint_names)
        want = arm_joint_names("right_arm") + arm_joint_names("left_arm")
        missing = [n for n in want if n not in names]
        if missing:
            raise SpecError(f"rby1-sdk model {model!r} has no joints {missing}")
        self.state_right = list(layout.right_arm_idx)
        self.state_left = list(layout.left_arm_idx)
        if [names[i] for i in self.state_right] != arm_joint_names("right_arm") or \
                [names[i] for i in self.state_left] != arm_joint_names("left_arm"):
            raise SpecError(f"rby1-sdk model {model!r}: arm index layout differs from its joint names")
        self.grippers = None
        if self.cfg["gripper"] == "dynamixel":
            self.grippers = DynamixelGrippers(self.rby, str(self.cfg["gripper_device"]), list(self.cfg["gripper_ids"]),
                                              bool(self.cfg["gripper_open_at_max"]))
        self.stream = None
        self.last_gripper = np.full(2, np.nan)

    @classmethod
    def from_spec(cls, spec: RobotSpec, overrides: Mapping[str, Any] | None = None) -> "Rby1Sdk":
        overrides = dict(overrides or {})
        return cls(spec, model_name(spec, overrides.pop("model", "")), sdk_settings(spec, overrides))

    def command(self, positions: np.ndarray):
        """The SDK command builder for ``positions`` (SI, the spec's order)."""
        q = np.asarray(positions, dtype=np.float64)
        return arm_command(self.rby, q[self.right], q[self.left], float(self.cfg["minimum_time"]),
                           float(self.cfg["control_hold_time"]))

    def connect(self) -> None:
        rby, robot, cfg = self.rby, self.robot, self.cfg
        address = cfg["address"]
        if not robot.connect(int(cfg["connect_retries"]), int(cfg["connect_timeout_ms"])):
            raise DriverError(f"cannot connect to the RB-Y1 at {address}: check the robot is on, the network, "
                              f"and sdk.address in the robot YAML (or the sdk_address parameter)")
        if not robot.is_power_on(cfg["power"]) and not robot.power_on(cfg["power"]):
            raise DriverError(f"RB-Y1 {address}: power on ({cfg['power']}) failed; check the e-stop and the battery")
        if not robot.is_servo_on(cfg["servo"]) and not robot.servo_on(cfg["servo"]):
            raise DriverError(f"RB-Y1 {address}: servo on ({cfg['servo']}) failed")
        state = robot.get_control_manager_state().state
        if state in (rby.ControlManagerState.State.MajorFault, rby.ControlManagerState.State.MinorFault):
            if not robot.reset_fault_control_manager():
                raise DriverError(f"RB-Y1 {address}: the control manager is in {state} and reset failed")
        if not robot.enable_control_manager():
            raise DriverError(f"RB-Y1 {address}: enable_control_manager failed")
        if self.grippers is not None:
            self.grippers.connect()
        self.stream = robot.create_command_stream(int(cfg["stream_priority"]))

    def read(self) -> np.ndarray:
        pos = np.asarray(self.robot.get_state().position, dtype=np.float64)
        out = np.full(self.spec.dof, np.nan)
        out[self.right] = pos[self.state_right]
        out[self.left] = pos[self.state_left]
        out[self.grippers_idx] = self.grippers.read() if self.grippers is not None else self.last_gripper
        return out

    def write(self, positions: np.ndarray) -> None:
        q = np.asarray(positions, dtype=np.float64)
        self.stream.send_command(self.command(q))
        if self.grippers is not None:
            self.grippers.write(q[self.grippers_idx])
        else:  # grippers not driven: they stay where they are; report the commanded value
            self.last_gripper = q[self.grippers_idx]

    def disconnect(self) -> None:
        try:
            if self.stream is not None:
                self.stream.cancel()
            if self.grippers is not None:
                self.grippers.disconnect()
        finally:
            if self.robot.is_connected():
                self.robot.disconnect()


# -- driver: ros2 (rby1_ros2) ---------------------------------------------------------------------
def ros2_settings(spec: RobotSpec) -> dict[str, Any]:
    cfg = {"joint_states": "rby1/joint_states",
           "controllers": {"right_arm_controller": arm_joint_names("right_arm"),
                           "left_arm_controller": arm_joint_names("left_arm"),
                           "gripper_controller": list(GRIPPERS)},
           "gripper_joints": {"right_gripper": "gripper_finger_r2", "left_gripper": "gripper_finger_l2"},
           "gripper_stroke": 0.05}
    cfg.update(section(spec, "ros2"))
    if float(cfg["gripper_stroke"]) <= 0:
        raise SpecError(f"robot {spec.name}: ros2.gripper_stroke must be > 0")
    return cfg


def ros2_names(spec: RobotSpec) -> tuple[list[str], np.ndarray, np.ndarray]:
    """rby1_ros2's name, scale and offset for each of our joints (``theirs = scale * ours + offset``)."""
    cfg = ros2_settings(spec)
    grip = dict(cfg["gripper_joints"])
    names, scale = [], np.ones(spec.dof)
    for i, n in enumerate(spec.joint_names):
        if n in grip:
            names.append(str(grip[n]))
            scale[i] = float(cfg["gripper_stroke"])
        else:
            names.append(n)
    return names, scale, np.zeros(spec.dof)


def ros2_targets(spec: RobotSpec) -> list[TrajectoryTarget]:
    cfg = ros2_settings(spec)
    names, scale, offset = ros2_names(spec)
    out = []
    for controller, joints in dict(cfg["controllers"]).items():
        idx = joint_indices(spec, list(joints), f"ros2.controllers.{controller}")
        out.append(TrajectoryTarget(str(controller), idx, [names[i] for i in idx], scale[idx], offset[idx]))
    covered = sorted(i for t in out for i in t.indices)
    if covered != list(range(spec.dof)):
        raise SpecError(f"robot {spec.name}: ros2.controllers must cover every joint exactly once; "
                        f"they cover {[spec.joint_names[i] for i in covered]}")
    return out


def command_output(port, spec: RobotSpec, driver: str, controller: str = "") -> CommandOutput:
    if driver == "ros2":
        return TrajectoryOutput(port, ros2_targets(spec))
    return TrajectoryOutput(port, [single_trajectory(spec, controller or spec.controller)])


def hardware(spec: RobotSpec, driver: str, overrides: Mapping[str, Any]) -> HardwareDriver | None:
    if driver == "sdk":
        return Rby1Sdk.from_spec(spec, {"address": overrides.get("sdk_address"), "model": overrides.get("model")})
    return None
