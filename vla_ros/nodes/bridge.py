"""controller_bridge: plays action chunks on the robot at its control rate, safely.

Subscribes ``vla/action_chunk`` (vla_ros/ActionChunk), ``joint_states``, ``vla/enable`` and
``vla/estop`` (std_msgs/Bool); publishes trajectory_msgs/JointTrajectory on
``<controller>/joint_trajectory`` (a ros2_control joint_trajectory_controller, or the mock arm).

Every control period it samples the chunk trajectory (time-aligned by the chunk's observation
stamp, interpolated between steps, past steps skipped), clamps it to the position and velocity
limits and sends it. It holds the last commanded position when: not enabled, e-stopped (latched
until ``vla/enable`` true), no chunk covers the present (watchdog), the policy's chunk publisher
is gone (liveliness), joint states are stale, or a chunk is rejected (non-finite values, wrong
joint names or shape).
"""
from __future__ import annotations

import logging
import os
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..core.chunk import ActionChunk
from ..core.embodiment import RobotSpec, reorder
from ..core.player import AGGREGATIONS, ChunkPlayer
from ..core.safety import SafetyLimits
from ..transport.params import Param
from ..transport.port import RELIABLE_QOS, STATE_QOS, Port
from ..transport.types import stamp_to_sec

PARAMS = [
    Param("robot", "str", "so100", "Robot description (config/robots/<robot>.yaml or a path)"),
    Param("control_rate", "float", 0.0, "Command rate in Hz; 0 takes the robot's control_rate", min=0.0),
    Param("start_enabled", "bool", False, "Move as soon as chunks arrive; if false, wait for vla/enable true"),
    Param("aggregation", "str", "crossfade", "How a new chunk joins the one playing", choices=AGGREGATIONS),
    Param("crossfade_time", "float", 0.25, "Seconds over which a new chunk is blended into the old", min=0.0),
    Param("state_timeout", "float", 0.25, "Hold when the last joint_states is older than this (s)", min=0.0),
    Param("controller", "str", "", "Controller name for <controller>/joint_trajectory; empty takes the robot's"),
    Param("realtime_priority", "int", 0,
          "SCHED_FIFO priority (1-99) for the control loop, as ros2_control's controller_manager does; "
          "needs root, CAP_SYS_NICE or an rtprio limit (a warning otherwise); 0: normal scheduling",
          min=0, max=99),
    Param("timing_log", "str", "",
          "Benchmarks: at shutdown, write the control timer's callback times (CLOCK_MONOTONIC s, one per "
          "line, the last 2 h) to this file and log their period statistics; empty: off"),
]


@dataclass
class Command:
    positions: np.ndarray
    holding: bool
    reason: str


class BridgeLogic:
    """The bridge without middleware: feed it events and call :meth:`tick` every period."""

    def __init__(self, spec: RobotSpec, period: float, start_enabled: bool = False,
                 aggregation: str = "crossfade", crossfade_time: float = 0.25,
                 state_timeout: float = 0.25, logger: logging.Logger | None = None) -> None:
        self.spec = spec
        self.period = period
        self.enabled = start_enabled
        self.estopped = False
        self.state_timeout = state_timeout
        self.player = ChunkPlayer(spec.dof, aggregation, crossfade_time)
        self.limits = SafetyLimits.from_spec(spec)
        self.log = logger or logging.getLogger("controller_bridge")
        self.measured: np.ndarray | None = None
        self.measured_time = -np.inf
        self.last_cmd: np.ndarray | None = None
        self.last_tick: float | None = None
        self.reason = "waiting for joint_states"
        self.hold_reason = ""
        self.policy_alive = True
        self.counts = {"chunks_accepted": 0, "chunks_rejected": 0, "chunks_stale": 0,
                       "steps_skipped": 0, "holds": 0}

    # -- events ---------------------------------------------------------------------------------
    def on_joint_state(self, names: list[str], positions, stamp: float) -> None:
        q, missing = reorder(positions, names, self.spec.joint_names)
        if missing or not np.all(np.isfinite(q)):
            self.log.warning("joint_states ignored: missing %s / non-finite values", missing)
            return
        self.measured, self.measured_time = q, stamp

    def on_chunk(self, chunk: ActionChunk, now: float) -> str | None:
        """Accept or reject a chunk; returns the rejection reason (and holds) or None."""
        problem = chunk.problem(self.spec.joint_names)
        if problem:
            self.counts["chunks_rejected"] += 1
            self._hold_now(f"rejected {problem}")
            self.log.error("%s; holding position", problem)
            return problem
        current = self.last_cmd if self.last_cmd is not None else self.measured
        if current is None:
            self.counts["chunks_stale"] += 1
            return "no joint_states yet"
        result = self.player.add(chunk, now, current)
        self.counts["steps_skipped"] += result.dropped_steps
        if result.kept_steps == 0:
            self.counts["chunks_stale"] += 1
            self.log.warning("chunk %d is entirely in the past (stamp %.3f s old); ignored",
                             chunk.chunk_id, now - chunk.stamp)
            return "stale"
        self.counts["chunks_accepted"] += 1
        self.hold_reason = ""
        self.policy_alive = True
        return None

    def on_enable(self, value: bool) -> None:
        if value:
            if self.estopped:
                self.log.warning("e-stop released by vla/enable")
            self.estopped = False
            self.enabled = True
            self.hold_reason = ""
        else:
            self.enabled = False
            self._hold_now("disabled")

    def on_estop(self, value: bool) -> None:
        if value:
            if not self.estopped:
                self.log.error("E-STOP: holding position until vla/enable true")
            self.estopped = True
            self._hold_now("e-stop")

    def on_policy_lost(self) -> None:
        """The policy's chunk publisher is gone (process died, or missed its liveliness lease):
        hold now. The trajectory is kept, so a publisher that was only late resumes it."""
        if self.policy_alive:
            self.log.error("the policy's chunk publisher is gone; holding position")
        self.policy_alive = False

    def on_policy_regained(self) -> None:
        if not self.policy_alive:
            self.log.warning("the policy's chunk publisher is alive again; resuming")
        self.policy_alive = True

    def _hold_now(self, reason: str) -> None:
        """Drop the trajectory; hold until a new chunk is accepted (and enabled)."""
        self.player.clear()
        self.hold_reason = reason

    # -- the control period ---------------------------------------------------------------------
    def tick(self, now: float) -> Command | None:
        """The command for ``now``, or None when nothing may be sent (no joint state ever)."""
        dt = self.period if self.last_tick is None else max(1e-6, now - self.last_tick)
        self.last_tick = now
        if self.measured is None:
            self.reason = "waiting for joint_states"
            return None
        if self.last_cmd is None:
            self.last_cmd = self.measured.copy()  # soft start from the measured pose
        hold = None
        if now - self.measured_time > self.state_timeout:
            hold = f"joint_states stale ({now - self.measured_time:.2f} s)"
        elif self.estopped:
            hold = "e-stop"
        elif not self.policy_alive:
            hold = "policy lost"
        elif not self.enabled:
            hold = "disabled"
        target = None if hold else self.player.sample(now)
        if target is None:
            if hold is None:
                hold = self.hold_reason or ("no chunk" if self.player.end_time is None else "chunk ended")
            if self.reason != hold:
                self.log.info("holding: %s", hold)
            self.reason = hold
            self.counts["holds"] += 1
            return Command(self.last_cmd.copy(), True, hold)
        cmd = self.limits.apply(target, self.last_cmd, dt)
        if self.reason != "running":
            self.log.info("running")
        self.reason = "running"
        self.last_cmd = cmd
        return Command(cmd, False, "running")


def set_realtime_priority(priority: int, logger: logging.Logger) -> bool:
    """Run the calling thread (the executor's) with SCHED_FIFO ``priority``; warn if not allowed."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        logger.info("control loop runs with SCHED_FIFO priority %d", priority)
        return True
    except (PermissionError, AttributeError, OSError) as exc:
        logger.warning("could not set SCHED_FIFO priority %d (%s); the control period may jitter under "
                       "load. Allow it with 'ulimit -r %d' (limits.conf rtprio) or CAP_SYS_NICE",
                       priority, exc, priority)
        return False


class ControllerBridge:
    def __init__(self, port: Port) -> None:
        from ..robots import load_robot

        self.port = port
        p = port.parameters(PARAMS)
        self.spec = spec = load_robot(p.robot)
        rate = p.control_rate or spec.control_rate
        self.period = 1.0 / rate
        self.logic = BridgeLogic(spec, self.period, p.start_enabled, p.aggregation, p.crossfade_time,
                                 p.state_timeout, port.logger)
        controller = p.controller or spec.controller
        self.pub = port.publisher(f"{controller}/joint_trajectory", "trajectory_msgs/msg/JointTrajectory", RELIABLE_QOS)
        # The reader asks for no liveliness lease, so it matches any chunk publisher (ros2 bag play
        # too); the policy node offers a short one, and its loss makes the bridge hold.
        port.subscribe("vla/action_chunk", "vla_ros/msg/ActionChunk", self._on_chunk, RELIABLE_QOS,
                       on_liveliness_lost=self.logic.on_policy_lost,
                       on_liveliness_regained=self.logic.on_policy_regained)
        port.subscribe("joint_states", "sensor_msgs/msg/JointState", self._on_joint_state, STATE_QOS)
        # volatile readers match both `ros2 topic pub` (volatile) and latched publishers
        port.subscribe("vla/enable", "std_msgs/msg/Bool", lambda m: self.logic.on_enable(bool(m.data)), RELIABLE_QOS)
        port.subscribe("vla/estop", "std_msgs/msg/Bool", lambda m: self.logic.on_estop(bool(m.data)), RELIABLE_QOS)
        self.timing_log = p.timing_log
        self.tick_times: deque[float] | None = deque(maxlen=int(7200 * rate)) if p.timing_log else None
        if p.realtime_priority:
            set_realtime_priority(p.realtime_priority, port.logger)
        self.timer = port.timer(self.period, self._tick)
        port.logger.info("controller_bridge: %s at %.0f Hz -> %s (%s)", spec.name, rate,
                         port.resolve(f"{controller}/joint_trajectory"),
                         "enabled" if p.start_enabled else "waiting for vla/enable")

    def _on_joint_state(self, msg) -> None:
        self.logic.on_joint_state(list(msg.name), msg.position, self.port.now())

    def _on_chunk(self, msg) -> None:
        horizon, dim = int(msg.horizon), int(msg.action_dim)
        actions = np.asarray(msg.actions, dtype=np.float32)
        if actions.size != horizon * dim or horizon == 0:
            self.logic.counts["chunks_rejected"] += 1
            self.logic._hold_now("rejected malformed chunk")
            self.port.logger.error("chunk %d: %d values for horizon %d x action_dim %d; holding",
                                   msg.chunk_id, actions.size, horizon, dim)
            return
        chunk = ActionChunk(stamp_to_sec(msg.header.stamp), int(msg.chunk_id), list(msg.joint_names),
                            actions.reshape(horizon, dim), float(msg.step_period), msg.model_variant,
                            float(msg.inference_latency))
        self.logic.on_chunk(chunk, self.port.now())

    def _tick(self) -> None:
        if self.tick_times is not None:
            self.tick_times.append(time.monotonic())
        cmd = self.logic.tick(self.port.now())
        if cmd is None:
            return
        point = self.port.new(
            "trajectory_msgs/msg/JointTrajectoryPoint",
            positions=cmd.positions.astype(np.float64),
            time_from_start=self.port.new("builtin_interfaces/msg/Duration", sec=0,
                                          nanosec=int(self.period * 1e9)),
        )
        # header stamp zero: the controller starts the point now (trajectory_msgs convention)
        self.pub.publish(self.port.new(
            "trajectory_msgs/msg/JointTrajectory",
            joint_names=self.spec.joint_names, points=[point],
        ))

    def close(self) -> None:
        self.timer.cancel()
        if self.tick_times is not None and len(self.tick_times) > 1:
            self._write_timing_log()

    def _write_timing_log(self) -> None:
        times = np.asarray(self.tick_times)
        period = np.diff(times)
        jitter = np.abs(period - self.period)
        with open(self.timing_log, "w") as f:
            f.writelines(f"{t:.6f}\n" for t in times)
        self.port.logger.info(
            "control timer: %d periods, median %.3f ms, p99 %.3f ms, max %.3f ms; |period - %.1f ms| "
            "p50 %.3f ms, p99 %.3f ms (tick times in %s)", len(period), np.median(period) * 1e3,
            np.percentile(period, 99) * 1e3, period.max() * 1e3, self.period * 1e3,
            np.median(jitter) * 1e3, np.percentile(jitter, 99) * 1e3, self.timing_log)


def main(argv: list[str] | None = None) -> int:
    from .runner import run

    return run(ControllerBridge, "controller_bridge", argv)


if __name__ == "__main__":
    raise SystemExit(main())
