"""state_publisher: publishes sensor_msgs/JointState on ``joint_states`` (our joint names, SI).

By driver (``driver`` parameter; the robot YAML lists what each robot has):

- ``mock``: a mock arm with the robot's limits that emulates the robot's real command interface:
  it follows the bridge's ``<controller>/joint_trajectory`` (SO-100, RB-Y1) or the Interbotix
  ``<arm>/commands/joint_group`` / ``joint_single`` topics (ALOHA, whose per-arm
  ``<arm>/joint_states`` it publishes too, as the xs_sdk does).
- in-process hardware (``lerobot`` for the SO-100, ``sdk`` for the RB-Y1): the node hosts the
  driver, as ros2_control's controller manager hosts hardware: each period it reads the joints and
  writes the latest command from the bridge's trajectory topic. Nothing is written before the first
  command, or with a command that names unknown joints or is not finite.
- external drivers (``interbotix`` for ALOHA, ``ros2`` for the RB-Y1): the node merges / relays the
  driver's own joint states into ``joint_states`` with the robot's names and units.
- ``ros2_control`` (SO-100): joint states come from ros2_control's joint_state_broadcaster; the
  launch does not start this node.
"""
from __future__ import annotations

import numpy as np

from ..robots.base import Target, follow_trajectory
from ..robots.mock import MockArm
from ..transport.params import Param, ParameterError
from ..transport.port import STATE_QOS, Port

DRIVERS = ("mock", "lerobot", "sdk", "interbotix", "ros2")

PARAMS = [
    Param("robot", "str", "so100", "Robot description (config/robots/<robot>.yaml or a path)"),
    Param("driver", "str", "mock", "Robot driver that supplies the joint states", choices=DRIVERS),
    Param("rate", "float", 0.0, "Publish rate in Hz; 0 takes the robot's state_rate", min=0.0),
    Param("controller", "str", "", "Controller whose <controller>/joint_trajectory the mock and in-process "
          "drivers follow; empty takes the robot's"),
    Param("frame_id", "str", "", "header.frame_id of the joint states"),
    Param("serial_port", "str", "", "lerobot: the Feetech bus's serial port; empty takes the robot YAML's lerobot.port"),
    Param("robot_id", "str", "", "lerobot: the follower's id (its calibration file <id>.json); empty: lerobot.id"),
    Param("calibration_dir", "str", "", "lerobot: directory of the calibration file; empty: lerobot.calibration_dir "
          "or LeRobot's default"),
    Param("sdk_address", "str", "", "sdk: the RB-Y1's gRPC address; empty takes the robot YAML's sdk.address"),
    Param("model", "str", "", "sdk: RB-Y1 model a, m or ub; empty takes the robot YAML's model"),
]


class StatePublisher:
    def __init__(self, port: Port) -> None:
        from ..robots import SpecError, drivers, load_robot, robot_module

        self.port = port
        p = port.parameters(PARAMS)
        self.spec = spec = load_robot(p.robot)
        if p.driver not in drivers(spec):
            raise ParameterError(f"state_publisher: parameter 'driver' = {p.driver!r}: robot {spec.name} has "
                                 f"drivers {', '.join(drivers(spec))}")
        self.driver_name = p.driver
        self.frame_id = p.frame_id
        self.period = 1.0 / (p.rate or spec.state_rate)
        self.controller = p.controller or spec.controller
        self.module = robot_module(spec)
        self.target = Target(spec)
        self.arm: MockArm | None = None
        self.hardware = None
        self.relay = None
        self.pub = port.publisher("joint_states", "sensor_msgs/msg/JointState", STATE_QOS)
        self.arm_pubs = []
        family = self.module.__name__.rsplit(".", 1)[-1]
        if p.driver == "mock":
            self.arm = MockArm(spec)
            if family == "aloha":
                from ..robots import aloha

                aloha.follow_commands(port, spec, self._on_command, port.warn_once)
                self.arms = aloha.arm_maps(spec)
                self.arm_pubs = [port.publisher(a.states_topic, "sensor_msgs/msg/JointState", STATE_QOS)
                                 for a in self.arms]
                source = ", ".join(port.resolve(a.group_topic) for a in self.arms)
            else:
                follow_trajectory(port, spec, self.controller, self._on_command, port.warn_once)
                source = port.resolve(f"{self.controller}/joint_trajectory")
            port.logger.info("state_publisher: %s (mock driver) at %.0f Hz, following %s", spec.name,
                             1.0 / self.period, source)
        elif p.driver in ("interbotix", "ros2"):
            self.relay = _make_relay(port, spec, p.driver, self._publish)
            port.logger.info("state_publisher: %s (%s driver) at %.0f Hz, relaying %s", spec.name, p.driver,
                             1.0 / self.period, ", ".join(self.relay.sources))
        else:
            self.hardware = self.module.hardware(spec, p.driver, {
                "serial_port": p.serial_port, "robot_id": p.robot_id, "calibration_dir": p.calibration_dir,
                "sdk_address": p.sdk_address, "model": p.model})
            if self.hardware is None:
                raise SpecError(f"state_publisher: robot {spec.name} driver {p.driver!r} is not hosted here "
                                f"(its joint states come from the robot's own stack)")
            self.hardware.connect()
            follow_trajectory(port, spec, self.controller, self._on_command, port.warn_once)
            port.logger.info("state_publisher: %s (%s driver) at %.0f Hz, following %s", spec.name, p.driver,
                             1.0 / self.period, port.resolve(f"{self.controller}/joint_trajectory"))
        self.timer = port.timer(self.period, self._tick) if self.relay is None else None

    def _on_command(self, names: list[str], positions: np.ndarray) -> None:
        unknown = [n for n in names if n not in self.spec.joint_names]
        if unknown:
            self.port.warn_once(f"unknown:{unknown}", f"ignoring a command with unknown joints {unknown}; "
                                f"{self.spec.name} has {self.spec.joint_names}")
            return
        self.target.update(names, positions)
        if self.arm is not None:
            self.arm.command(names, positions)

    def _publish(self, q: np.ndarray, v: np.ndarray | None, stamp: float) -> None:
        self.pub.publish(self.port.new(
            "sensor_msgs/msg/JointState", header=self.port.header(stamp, self.frame_id),
            name=self.spec.joint_names, position=np.asarray(q, dtype=np.float64),
            velocity=np.zeros(0) if v is None else np.asarray(v, dtype=np.float64)))

    def _tick(self) -> None:
        now = self.port.now()
        if self.arm is not None:
            q = self.arm.step(self.period)
            v = self.arm.v.copy()
            for arm, pub in zip(getattr(self, "arms", []), self.arm_pubs):
                from ..robots.aloha import arm_state_message

                pub.publish(arm_state_message(self.port, arm, self.spec, q, v, now))
            self._publish(q, v, now)
            return
        q = self.hardware.read()
        if self.target.complete:
            self.hardware.write(self.target.q)
        if np.all(np.isfinite(q)):
            self._publish(q, None, now)
        else:
            self.port.warn_once("hw_nan", "the driver returned non-finite joint positions; not published")

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.hardware is not None:
            self.hardware.disconnect()


class _Relay:
    sources: tuple[str, ...] = ()


def _make_relay(port: Port, spec, driver: str, publish) -> _Relay:
    """Joint states of an external driver -> ``publish(q, v, stamp)`` in our names and units."""
    relay = _Relay()
    if driver == "interbotix":
        from ..robots.aloha import StateMerger

        merger = StateMerger(spec)

        for arm in merger.arms:
            def on_state(msg, arm=arm) -> None:
                missing = merger.update(arm, list(msg.name), msg.position, msg.velocity, port.now())
                if missing:
                    port.warn_once(f"arm:{arm.namespace}", f"{arm.states_topic}: joint states without "
                                   f"{missing}; ignored")
                    return
                if merger.complete():
                    publish(merger.q, merger.v, port.now())

            port.subscribe(arm.states_topic, "sensor_msgs/msg/JointState", on_state, STATE_QOS)
        relay.sources = tuple(port.resolve(a.states_topic) for a in merger.arms)
        return relay
    from ..core.embodiment import reorder
    from ..robots.rby1 import ros2_names, ros2_settings

    names, scale, offset = ros2_names(spec)
    topic = str(ros2_settings(spec)["joint_states"])

    def on_state(msg) -> None:
        q, missing = reorder(msg.position, list(msg.name), names)
        if missing or not np.all(np.isfinite(q)):
            port.warn_once("rby1_missing", f"{topic}: joint states without {missing or 'finite values'}; ignored")
            return
        publish((q - offset) / scale, None, port.now())

    port.subscribe(topic, "sensor_msgs/msg/JointState", on_state, STATE_QOS)
    relay.sources = (port.resolve(topic),)
    return relay


def main(argv: list[str] | None = None) -> int:
    from .runner import run

    return run(StatePublisher, "state_publisher", argv)


if __name__ == "__main__":
    raise SystemExit(main())
