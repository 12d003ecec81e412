"""state_publisher: publishes sensor_msgs/JointState on ``joint_states`` from the robot driver.

With ``driver: mock`` the driver is the mock arm, which follows the trajectory commands the
controller bridge sends on ``<controller>/joint_trajectory`` within the robot's limits.
"""
from __future__ import annotations

import numpy as np

from ..robots.mock import MockArm
from ..transport.params import Param
from ..transport.port import RELIABLE_QOS, STATE_QOS, Port

DRIVERS = ("mock",)

PARAMS = [
    Param("robot", "str", "so100", "Robot description (config/robots/<robot>.yaml or a path)"),
    Param("driver", "str", "mock", "Robot driver that supplies the joint states", choices=DRIVERS),
    Param("rate", "float", 0.0, "Publish rate in Hz; 0 takes the robot's state_rate", min=0.0),
    Param("controller", "str", "", "Controller whose <controller>/joint_trajectory the mock arm follows; empty takes the robot's"),
    Param("frame_id", "str", "", "header.frame_id of the joint states"),
]


class StatePublisher:
    def __init__(self, port: Port) -> None:
        from ..robots import load_robot

        self.port = port
        p = port.parameters(PARAMS)
        self.spec = spec = load_robot(p.robot)
        self.frame_id = p.frame_id
        self.period = 1.0 / (p.rate or spec.state_rate)
        self.arm = MockArm(spec)
        controller = p.controller or spec.controller
        self.pub = port.publisher("joint_states", "sensor_msgs/msg/JointState", STATE_QOS)
        port.subscribe(f"{controller}/joint_trajectory", "trajectory_msgs/msg/JointTrajectory",
                       self._on_command, RELIABLE_QOS)
        self.timer = port.timer(self.period, self._tick)
        port.logger.info("state_publisher: %s (%s driver) at %.0f Hz, following %s", spec.name, p.driver,
                         1.0 / self.period, port.resolve(f"{controller}/joint_trajectory"))

    def _on_command(self, msg) -> None:
        if not msg.points:
            return
        positions = np.asarray(msg.points[-1].positions, dtype=np.float64)
        if len(positions) != len(msg.joint_names) or not np.all(np.isfinite(positions)):
            self.port.warn_once("bad_command", "ignoring a trajectory command with non-finite or missing positions")
            return
        unknown = self.arm.command(list(msg.joint_names), positions)
        if unknown:
            self.port.warn_once(f"unknown:{unknown}", f"ignoring unknown joints in command: {unknown}")

    def _tick(self) -> None:
        q = self.arm.step(self.period)
        self.pub.publish(self.port.new(
            "sensor_msgs/msg/JointState",
            header=self.port.header(self.port.now(), self.frame_id),
            name=self.spec.joint_names,
            position=q,
            velocity=self.arm.v.copy(),
        ))

    def close(self) -> None:
        self.timer.cancel()


def main(argv: list[str] | None = None) -> int:
    from .runner import run

    return run(StatePublisher, "state_publisher", argv)


if __name__ == "__main__":
    raise SystemExit(main())
