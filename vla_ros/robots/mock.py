"""The mock arm: a joint follower with the robot's limits, for demos and tests.

It follows position targets the way a position-controlled servo bus does: each joint moves
toward its target at most ``max_velocity`` and changes speed at most ``max_acceleration``, and
never leaves its position limits. Targets arrive as trajectory_msgs/JointTrajectory points (what
the controller bridge sends to a ros2_control joint_trajectory_controller).
"""
from __future__ import annotations

import numpy as np

from ..core.embodiment import RobotSpec


class MockArm:
    def __init__(self, spec: RobotSpec, start: np.ndarray | None = None) -> None:
        self.spec = spec
        self.q = np.array(spec.home if start is None else start, dtype=np.float64)
        self.v = np.zeros(spec.dof)
        self.target = self.q.copy()
        self.commands = 0

    def command(self, names: list[str], positions: np.ndarray) -> list[str]:
        """Set targets for the named joints; returns names it does not know (ignored)."""
        index = {n: i for i, n in enumerate(self.spec.joint_names)}
        unknown = []
        for n, p in zip(names, positions):
            i = index.get(n)
            if i is None:
                unknown.append(n)
            elif np.isfinite(p):
                self.target[i] = float(p)
        self.target = np.clip(self.target, self.spec.lower, self.spec.upper)
        self.commands += 1
        return unknown

    def step(self, dt: float) -> np.ndarray:
        """Advance ``dt`` seconds; returns the new positions."""
        vmax, amax = self.spec.max_velocity, self.spec.max_acceleration
        err = self.target - self.q
        # speed that still lets the joint stop at the target: sqrt(2 a d)
        v_want = np.sign(err) * np.minimum(vmax, np.sqrt(2.0 * amax * np.abs(err)))
        v_want = np.where(np.abs(err) < 1e-9, 0.0, v_want)
        dv = np.clip(v_want - self.v, -amax * dt, amax * dt)
        self.v = self.v + dv
        step = self.v * dt
        # do not overshoot the target
        step = np.where(np.abs(step) > np.abs(err), err, step)
        self.q = np.clip(self.q + step, self.spec.lower, self.spec.upper)
        self.v = np.where(np.abs(step) >= np.abs(err), 0.0, self.v)
        return self.q.copy()
