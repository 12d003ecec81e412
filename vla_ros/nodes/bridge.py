"""controller_bridge: plays action chunks on the robot at its control rate, safely.

Subscribes ``vla/action_chunk`` (vla_ros/ActionChunk), ``joint_states``, ``vla/enable`` and
``vla/estop`` (std_msgs/Bool). Every control period it samples the chunk trajectory
(time-aligned by the chunk's observation stamp, past steps skipped, aggregated with the chunk
playing), passes it through the safety layer (:mod:`vla_ros.core.safety`: position, velocity and
acceleration limits, the step cap, a soft start from the measured pose) and hands the SI command
to the robot's command output (:mod:`vla_ros.robots`): trajectory_msgs/JointTrajectory for
ros2_control and the in-process drivers (SO-100, RB-Y1 sdk), interbotix_xs_msgs
JointGroupCommand / JointSingleCommand for ALOHA, one JointTrajectory per rby1_ros2 controller.
With ``dry_run`` the commands go to ``vla/command_preview`` only (JointTrajectory, our joint
names) and nothing is sent to the robot.

It holds the last commanded position when: e-stopped (latched until ``vla/enable`` true), joint
states are stale (watchdog), the policy's chunk publisher is gone (liveliness), not enabled, no
chunk covers the present (watchdog), no chunk arrived for ``chunk_timeout``, or a chunk was
rejected (non-finite values, wrong joint names or shape, a jump beyond ``max_chunk_step``).
Every rejection is counted and reported with the hold reason and the mode on ``/diagnostics``
(diagnostic_msgs/DiagnosticArray, 1 Hz).
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
from ..core.player import AGGREGATIONS, DEFAULT_CROSSFADE_TIME, ChunkPlayer
from ..core.safety import SafetyLimits, SafetyState, SoftStart
from ..transport.params import Param, ParameterError
from ..transport.port import RELIABLE_QOS, STATE_QOS, Port
from ..transport.types import stamp_to_sec

PREVIEW_TOPIC = "vla/command_preview"
DIAGNOSTICS_TOPIC = "/diagnostics"
#: diagnostic_msgs/DiagnosticStatus levels
OK, WARN, ERROR = 0, 1, 2

PARAMS = [
    Param("robot", "str", "so100", "Robot description (config/robots/<robot>.yaml or a path)"),
    Param("driver", "str", "",
          "Robot driver whose command interface the bridge speaks (see the robot YAML's drivers); "
          "empty: the robot's default interface (the same for mock and its real_driver)"),
    Param("control_rate", "float", 0.0, "Command rate in Hz; 0 takes the robot's control_rate", min=0.0),
    Param("start_enabled", "bool", False, "Move as soon as chunks arrive; if false, wait for vla/enable true"),
    Param("dry_run", "bool", False,
          f"Publish the commands on {PREVIEW_TOPIC} only (JointTrajectory); nothing reaches the robot"),
    Param("aggregation", "str", "crossfade", "How a new chunk joins the one playing", choices=AGGREGATIONS),
    Param("crossfade_time", "float", DEFAULT_CROSSFADE_TIME,
          "Shortest blend (s): a new chunk is cross-faded into the one playing over the whole overlap, at "
          "least this long; also the fade-in from standstill", min=0.0),
    Param("state_timeout", "float", 0.25, "Hold when the last joint_states is older than this (s)", min=0.0),
    Param("chunk_timeout", "float", 0.0,
          "Hold when no chunk was accepted for this long (s), even if the last one still covers the "
          "present; 0: off (a chunk that ends, or a policy publisher that goes away, holds anyway)", min=0.0),
    Param("soft_start_time", "float", 0.5,
          "After a start, enable or e-stop release, the velocity limit ramps from 10% to 100% over "
          "this many seconds, from the measured pose (s); 0: off", min=0.0),
    Param("max_chunk_step", "float", 0.0,
          "Reject a chunk whose consecutive steps (or its first step from the command) differ by more "
          "than this on any joint (rad or m); 0: off", min=0.0),
    Param("controller", "str", "", "Controller name for <controller>/joint_trajectory; empty takes the robot's"),
    Param("diagnostics_period", "float", 1.0, f"Seconds between {DIAGNOSTICS_TOPIC} messages", min=0.05),
    Param("realtime_priority", "int", 0,
          "SCHED_FIFO priority (1-99) for the control loop, as ros2_control's controller_manager does; "
          "needs root, CAP_SYS_NICE or an rtprio limit (a warning otherwise); 0: normal scheduling",
          min=0, max=99),
    Param("timing_log", "str", "",
          "Benchmarks: at shutdown, write the control timer's callback times (CLOCK_MONOTONIC s, one per "
          "line, the last 2 h) to this file and log their period statistics; empty: off"),
]

#: holds after which the arm may not be where the bridge last commanded it: the next motion
#: restarts from the measured pose, with a soft start
_RESEED_HOLDS = ("e-stop", "disabled", "joint_states stale")


@dataclass
class Command:
    positions: np.ndarray
    holding: bool
    reason: str


class BridgeLogic:
    """The bridge without middleware: feed it events and call :meth:`tick` every period."""

    def __init__(self, spec: RobotSpec, period: float, start_enabled: bool = False,
                 aggregation: str = "crossfade", crossfade_time: float = DEFAULT_CROSSFADE_TIME,
                 state_timeout: float = 0.25, logger: logging.Logger | None = None,
                 soft_start_time: float = 0.5, max_chunk_step: float = 0.0,
                 chunk_timeout: float = 0.0) -> None:
        self.spec = spec
        self.period = period
        self.player = ChunkPlayer(spec.dof, aggregation, crossfade_time)
        self.limits = SafetyLimits.from_spec(spec)
        self.safety = SafetyState(enabled=start_enabled, state_timeout=state_timeout, chunk_timeout=chunk_timeout)
        self.soft_start = SoftStart(soft_start_time)
        self.max_chunk_step = float(max_chunk_step)
        self.log = logger or logging.getLogger("controller_bridge")
        self.counts = self.limits.counts  # one set of counters: the limits' and the bridge's
        self.measured: np.ndarray | None = None
        self.last_cmd: np.ndarray | None = None
        self.velocity = np.zeros(spec.dof)
        self.last_tick: float | None = None
        self.reason = "waiting for joint_states"
        self.hold_reason = ""     # why the trajectory was dropped (rejection, disable, e-stop)
        self.last_rejection = ""
        self.reseed = True        # next motion starts from the measured pose

    # -- the safety state, as attributes -------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return self.safety.enabled

    @property
    def estopped(self) -> bool:
        return self.safety.estopped

    @property
    def policy_alive(self) -> bool:
        return self.safety.policy_alive

    @property
    def measured_time(self) -> float:
        return self.safety.last_state

    # -- events ---------------------------------------------------------------------------------
    def on_joint_state(self, names: list[str], positions, stamp: float) -> str | None:
        """Take a joint state (our names, SI); returns why it was ignored, or None."""
        q, missing = reorder(positions, names, self.spec.joint_names)
        if missing or not np.all(np.isfinite(q)):
            self.counts["states_rejected"] += 1
            why = f"missing joints {missing}" if missing else "non-finite positions"
            if self.counts["states_rejected"] in (1, 10, 100, 1000):
                self.log.warning("joint_states ignored (%d so far): %s; expected joints %s",
                                 self.counts["states_rejected"], why, self.spec.joint_names)
            return why
        self.measured = q
        self.safety.last_state = stamp
        return None

    def _current(self) -> np.ndarray | None:
        if self.reseed or self.last_cmd is None:
            return self.measured
        return self.last_cmd

    def _reject(self, counter: str, problem: str) -> str:
        self.counts["chunks_rejected"] += 1
        if counter:
            self.counts[counter] += 1
        self.last_rejection = problem
        self._hold_now(f"rejected {problem}")
        self.log.error("%s; holding position", problem)
        return problem

    def on_chunk(self, chunk: ActionChunk, now: float) -> str | None:
        """Accept or reject a chunk; returns the rejection reason (and holds) or None."""
        problem = chunk.problem(self.spec.joint_names)
        if problem:
            counter = ("chunks_rejected_nonfinite" if "non-finite" in problem else
                       "chunks_rejected_names" if "joint names" in problem else "chunks_rejected_shape")
            return self._reject(counter, problem)
        if self.safety.estopped:
            self.counts["chunks_ignored_estop"] += 1
            return "e-stop"
        current = self._current()
        if current is None:
            self.counts["chunks_stale"] += 1
            return "no joint_states yet"
        if self.max_chunk_step > 0:
            future = chunk.step_times() > now
            jump = self.limits.chunk_jump(chunk.actions[future] if future.any() else chunk.actions[-1:],
                                          self.max_chunk_step, start=current)
            if jump:
                return self._reject("chunks_rejected_step", f"chunk {chunk.chunk_id}: {jump}")
        result = self.player.add(chunk, now, current)
        self.counts["steps_skipped"] += result.dropped_steps
        if result.kept_steps == 0:
            self.counts["chunks_stale"] += 1
            self.log.warning("chunk %d is entirely in the past (stamp %.3f s old); ignored",
                             chunk.chunk_id, now - chunk.stamp)
            return "stale"
        self.counts["chunks_accepted"] += 1
        self.safety.last_chunk = now
        self.hold_reason = ""
        self.safety.policy_alive = True
        return None

    def on_enable(self, value: bool) -> None:
        if value:
            if self.safety.enable(True):
                self.log.warning("e-stop released by vla/enable")
            self.hold_reason = ""
        else:
            self.safety.enable(False)
            self._hold_now("disabled")

    def on_estop(self, value: bool) -> None:
        if value:
            if not self.safety.estopped:
                self.log.error("E-STOP: holding position until vla/enable true")
            self.safety.estop()
            self._hold_now("e-stop")

    def on_policy_lost(self) -> None:
        """The policy's chunk publisher is gone (process died, or missed its liveliness lease):
        hold now. The trajectory is kept, so a publisher that was only late resumes it."""
        if self.safety.policy_alive:
            self.log.error("the policy's chunk publisher is gone; holding position")
        self.safety.policy_alive = False

    def on_policy_regained(self) -> None:
        if not self.safety.policy_alive:
            self.log.warning("the policy's chunk publisher is alive again; resuming")
        self.safety.policy_alive = True

    def _hold_now(self, reason: str) -> None:
        """Drop the trajectory; hold until a new chunk is accepted (and enabled)."""
        self.player.clear()
        self.hold_reason = reason

    # -- the control period ---------------------------------------------------------------------
    def _hold(self, reason: str) -> Command:
        if self.reason != reason:
            age = (self.last_tick or 0.0) - self.safety.last_state
            self.log.info("holding: %s", reason + (f" (last joint_states {age:.2f} s ago)"
                                                   if reason == "joint_states stale" else ""))
        self.reason = reason
        self.counts["holds"] += 1
        self.velocity[:] = 0.0
        if reason.startswith(_RESEED_HOLDS):
            self.reseed = True
        return Command(self.last_cmd.copy(), True, reason)

    def tick(self, now: float) -> Command | None:
        """The command for ``now``, or None when nothing may be sent (no joint state ever)."""
        dt = self.period if self.last_tick is None else max(1e-6, now - self.last_tick)
        self.last_tick = now
        if self.measured is None:
            self.reason = "waiting for joint_states"
            return None
        if self.last_cmd is None:
            self.last_cmd = self.measured.copy()  # soft start from the measured pose
        hold = self.safety.hold_reason(now)
        target = None if hold else self.player.sample(now)
        if target is None:
            if hold is None:
                hold = self.hold_reason or ("no chunk" if self.player.end_time is None else "chunk ended")
            return self._hold(hold)
        if self.reseed:
            # (re)start from where the arm is, slowly
            self.last_cmd = self.measured.copy()
            self.velocity[:] = 0.0
            self.soft_start.restart(now)
            self.reseed = False
        if not np.all(np.isfinite(target)):
            return self._reject_nonfinite()
        cmd = self.limits.apply(target, self.last_cmd, dt, self.velocity, self.soft_start.scale(now))
        if not np.all(np.isfinite(cmd)):
            return self._reject_nonfinite()
        if self.reason != "running":
            self.log.info("running")
        self.reason = "running"
        self.velocity = (cmd - self.last_cmd) / dt
        self.last_cmd = cmd
        return Command(cmd, False, "running")

    def _reject_nonfinite(self) -> Command:
        """Never send a non-finite command: count it, drop the trajectory and hold."""
        self.counts["commands_rejected_nonfinite"] += 1
        self._hold_now("rejected a non-finite command")
        return self._hold("rejected a non-finite command")

    # -- diagnostics ----------------------------------------------------------------------------
    def mode(self) -> str:
        if self.safety.estopped:
            return "estop"
        if self.reason == "running":
            return "running"
        if self.reason.startswith("waiting"):
            return "waiting"
        return "holding"

    def level(self) -> int:
        if self.safety.estopped or self.reason.startswith(("rejected", "joint_states stale", "policy lost")):
            return ERROR
        if self.mode() == "running" or self.reason in ("disabled", "no chunk", "chunk ended"):
            return OK
        return WARN


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
        from ..robots import command_output, drivers, load_robot

        self.port = port
        p = port.parameters(PARAMS)
        self.spec = spec = load_robot(p.robot)
        if p.driver and p.driver not in drivers(spec):
            raise ParameterError(f"controller_bridge: parameter 'driver' = {p.driver!r}: robot {spec.name} has "
                                 f"drivers {', '.join(drivers(spec))}")
        rate = p.control_rate or spec.control_rate
        self.period = 1.0 / rate
        self.dry_run = p.dry_run
        self.logic = BridgeLogic(spec, self.period, p.start_enabled, p.aggregation, p.crossfade_time,
                                 p.state_timeout, port.logger, soft_start_time=p.soft_start_time,
                                 max_chunk_step=p.max_chunk_step, chunk_timeout=p.chunk_timeout)
        controller = p.controller or spec.controller
        if p.dry_run:
            from ..robots.base import TrajectoryOutput, single_trajectory

            self.output = TrajectoryOutput(port, [single_trajectory(spec, "", topic=PREVIEW_TOPIC)])
        else:
            self.output = command_output(port, spec, p.driver, controller)
        self.diag_pub = port.publisher(DIAGNOSTICS_TOPIC, "diagnostic_msgs/msg/DiagnosticArray", RELIABLE_QOS)
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
        self.diag_timer = port.timer(p.diagnostics_period, self._publish_diagnostics)
        port.logger.info("controller_bridge: %s at %.0f Hz -> %s (%s%s)", spec.name, rate,
                         ", ".join(self.output.topics),
                         "enabled" if p.start_enabled else "waiting for vla/enable",
                         "; DRY RUN: nothing is sent to the robot" if p.dry_run else "")

    def _on_joint_state(self, msg) -> None:
        self.logic.on_joint_state(list(msg.name), msg.position, self.port.now())

    def _on_chunk(self, msg) -> None:
        horizon, dim = int(msg.horizon), int(msg.action_dim)
        actions = np.asarray(msg.actions, dtype=np.float32)
        if actions.size != horizon * dim or horizon == 0:
            self.logic._reject("chunks_rejected_shape",
                               f"chunk {msg.chunk_id}: {actions.size} values for horizon {horizon} x action_dim {dim}")
            return
        kwargs = {}
        if "instruction_id" in ActionChunk.__dataclass_fields__:
            kwargs["instruction_id"] = int(getattr(msg, "instruction_id", 0))
        chunk = ActionChunk(stamp_to_sec(msg.header.stamp), int(msg.chunk_id), list(msg.joint_names),
                            actions.reshape(horizon, dim), float(msg.step_period), msg.model_variant,
                            float(msg.inference_latency), **kwargs)
        self.logic.on_chunk(chunk, self.port.now())

    def _tick(self) -> None:
        if self.tick_times is not None:
            self.tick_times.append(time.monotonic())
        cmd = self.logic.tick(self.port.now())
        if cmd is None:
            return
        self.output.send(cmd.positions, self.period)
        self.logic.counts["commands_sent"] += 1

    def diagnostics(self):
        """The DiagnosticArray this bridge reports now."""
        lg = self.logic
        values = {
            "mode": "dry_run" if self.dry_run else lg.mode(),
            "hold_reason": "" if lg.reason == "running" else lg.reason,
            "enabled": str(lg.enabled).lower(),
            "estopped": str(lg.estopped).lower(),
            "policy_alive": str(lg.policy_alive).lower(),
            "dry_run": str(self.dry_run).lower(),
            "last_rejection": lg.last_rejection,
            "soft_start": str(lg.soft_start.active(self.port.now())).lower(),
            **{k: str(v) for k, v in lg.counts.items()},
        }
        kv = [self.port.new("diagnostic_msgs/msg/KeyValue", key=k, value=v) for k, v in values.items()]
        message = lg.reason if not self.dry_run else f"dry run: {lg.reason}"
        status = self.port.new("diagnostic_msgs/msg/DiagnosticStatus", level=self._level(lg.level()),
                               name=f"{self.port.node_name}: {self.spec.name} command safety",
                               message=message, hardware_id=self.spec.name, values=kv)
        return self.port.new("diagnostic_msgs/msg/DiagnosticArray", header=self.port.header(self.port.now()),
                             status=[status])

    def _level(self, level: int):
        # diagnostic_msgs/DiagnosticStatus.level is a `byte`: bytes in rclpy, an int elsewhere
        return bytes([level]) if self.port.backend == "rclpy" else level

    def _publish_diagnostics(self) -> None:
        self.diag_pub.publish(self.diagnostics())

    def close(self) -> None:
        self.timer.cancel()
        self.diag_timer.cancel()
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
