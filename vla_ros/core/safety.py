"""The safety layer every controller bridge applies to every command (middleware free).

:class:`SafetyLimits` shapes a target into a command the robot may receive: inside the position
limits, within the velocity and acceleration limits from the previous commands, and never more
than the step cap away from the previous command (a guard that holds even when a control period
comes late). During a soft start the velocity limit ramps up from a fraction of its value, so the
first motion after the bridge (re)starts from the measured pose is slow.

:class:`SafetyState` is the supervisor the bridge consults each period: e-stop (latched until an
explicit enable), enable, watchdogs (joint states, chunk stream, policy liveliness), the reason for
holding, and one counter per kind of rejection, which the bridge reports in its diagnostics.

Every limit is per joint, in SI units, from the robot YAML (``limits: {lower, upper, velocity,
acceleration, max_step}``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Counters the bridge reports (diagnostics): what was rejected or changed, and why.
COUNTERS = (
    "chunks_accepted",
    "chunks_rejected",            # all rejected chunks (the next four, plus malformed messages)
    "chunks_rejected_nonfinite",
    "chunks_rejected_names",
    "chunks_rejected_shape",
    "chunks_rejected_step",       # a jump between consecutive steps beyond max_chunk_step
    "chunks_stale",               # entirely in the past when it arrived, or before any joint state
    "chunks_ignored_estop",       # arrived while e-stopped
    "steps_skipped",              # chunk steps already in the past on arrival
    "states_rejected",            # joint_states with missing joints or non-finite values
    "position_clamped",
    "velocity_clamped",
    "acceleration_clamped",
    "step_clamped",
    "commands_rejected_nonfinite",
    "holds",                      # control periods spent holding
    "commands_sent",
)


def empty_counts() -> dict[str, int]:
    return {k: 0 for k in COUNTERS}


@dataclass
class SafetyLimits:
    """Per-joint limits (SI) and the counts of what they changed.

    ``max_acceleration`` and ``max_step`` are optional (None: not applied).
    """

    lower: np.ndarray
    upper: np.ndarray
    max_velocity: np.ndarray
    max_acceleration: np.ndarray | None = None
    max_step: np.ndarray | None = None
    counts: dict[str, int] = field(default_factory=empty_counts)

    def __post_init__(self) -> None:
        self.lower = np.asarray(self.lower, dtype=np.float64)
        self.upper = np.asarray(self.upper, dtype=np.float64)
        self.max_velocity = np.asarray(self.max_velocity, dtype=np.float64)
        if self.max_acceleration is not None:
            self.max_acceleration = np.asarray(self.max_acceleration, dtype=np.float64)
        if self.max_step is not None:
            self.max_step = np.asarray(self.max_step, dtype=np.float64)
        n = len(self.lower)
        for name in ("upper", "max_velocity", "max_acceleration", "max_step"):
            value = getattr(self, name)
            if value is not None and value.shape != (n,):
                raise ValueError(f"safety limits: {name} has shape {value.shape}, expected ({n},)")
        if np.any(self.lower >= self.upper) or np.any(self.max_velocity <= 0):
            raise ValueError("safety limits: need lower < upper and max_velocity > 0 for every joint")

    @classmethod
    def from_spec(cls, spec) -> "SafetyLimits":
        return cls(spec.lower, spec.upper, spec.max_velocity, spec.max_acceleration, spec.max_step)

    def apply(self, target: np.ndarray, previous: np.ndarray | None, dt: float,
              previous_velocity: np.ndarray | None = None, velocity_scale: float = 1.0) -> np.ndarray:
        """``target`` made safe to send after ``previous`` (sent ``dt`` s ago while moving at
        ``previous_velocity``). ``target`` must be finite (callers reject others)."""
        target = np.asarray(target, dtype=np.float64)
        out = np.clip(target, self.lower, self.upper)
        if np.any(out != target):
            self.counts["position_clamped"] += 1
        if previous is None or dt <= 0:
            return out
        previous = np.asarray(previous, dtype=np.float64)
        vmax = self.max_velocity * float(np.clip(velocity_scale, 1e-3, 1.0))
        v = (out - previous) / dt
        v_lim = np.clip(v, -vmax, vmax)
        if np.any(v_lim != v):
            self.counts["velocity_clamped"] += 1
        if self.max_acceleration is not None:
            amax = self.max_acceleration
            v0 = np.zeros_like(v) if previous_velocity is None else np.asarray(previous_velocity, dtype=np.float64)
            # a speed from which the joint can still stop at the target decelerating at amax in
            # steps of dt (v dt + v^2 / 2a <= distance), then the change of speed
            dist = np.abs(out - previous)
            stoppable = amax * (np.sqrt(dt * dt + 2.0 * dist / amax) - dt)
            v_acc = np.sign(v_lim) * np.minimum(np.abs(v_lim), np.maximum(stoppable, amax * dt))
            v_acc = np.clip(v_acc, v0 - amax * dt, v0 + amax * dt)
            if np.any(np.abs(v_acc - v_lim) > 1e-12):
                self.counts["acceleration_clamped"] += 1
            v_lim = v_acc
        step = v_lim * dt
        if self.max_step is not None:
            capped = np.clip(step, -self.max_step, self.max_step)
            if np.any(capped != step):
                self.counts["step_clamped"] += 1
            step = capped
        return np.clip(previous + step, self.lower, self.upper)

    def chunk_jump(self, actions: np.ndarray, max_chunk_step: np.ndarray | float,
                   start: np.ndarray | None = None) -> str | None:
        """Why ``actions`` (horizon, dof) jump too far between consecutive steps (or from
        ``start``, the position being commanded, to the first step), or None."""
        seq = np.asarray(actions, dtype=np.float64)
        if start is not None:
            seq = np.vstack([np.asarray(start, dtype=np.float64)[None, :], seq])
        if len(seq) < 2:
            return None
        jumps = np.abs(np.diff(seq, axis=0))
        cap = np.broadcast_to(np.asarray(max_chunk_step, dtype=np.float64), jumps.shape[1:])
        bad = jumps > cap
        if not np.any(bad):
            return None
        k, j = np.unravel_index(int(np.argmax(np.where(bad, jumps - cap, -np.inf))), jumps.shape)
        where = "from the commanded position to step 0" if (start is not None and k == 0) else \
            f"between steps {k - (start is not None)} and {k + 1 - (start is not None)}"
        return f"jump of {jumps[k, j]:.3f} {where} on joint {j} exceeds max_chunk_step {cap[j]:.3f}"


class SoftStart:
    """Velocity-limit scale that ramps linearly from ``initial`` to 1 over ``duration`` s."""

    def __init__(self, duration: float, initial: float = 0.1) -> None:
        self.duration = float(duration)
        self.initial = float(np.clip(initial, 1e-3, 1.0))
        self.started: float | None = None

    def restart(self, now: float) -> None:
        self.started = now

    def scale(self, now: float) -> float:
        if self.duration <= 0 or self.started is None:
            return 1.0
        w = (now - self.started) / self.duration
        return 1.0 if w >= 1.0 else self.initial + (1.0 - self.initial) * max(0.0, w)

    def active(self, now: float) -> bool:
        return self.scale(now) < 1.0


@dataclass
class SafetyState:
    """Enable / e-stop latch / watchdogs: why the bridge must hold now, if it must."""

    enabled: bool = False
    estopped: bool = False
    policy_alive: bool = True
    state_timeout: float = 0.25
    chunk_timeout: float = 0.0  # 0: off
    last_state: float = -np.inf
    last_chunk: float = -np.inf

    def enable(self, value: bool) -> bool:
        """Returns True when this releases an e-stop."""
        released = bool(value and self.estopped)
        if value:
            self.estopped = False
        self.enabled = bool(value)
        return released

    def estop(self) -> None:
        self.estopped = True

    def hold_reason(self, now: float) -> str | None:
        """The reason to hold regardless of the trajectory, or None (in order of severity)."""
        if self.estopped:
            return "e-stop"
        if now - self.last_state > self.state_timeout:
            return "joint_states stale" if np.isfinite(self.last_state) else "joint_states stale (none yet)"
        if not self.policy_alive:
            return "policy lost"
        if not self.enabled:
            return "disabled"
        if self.chunk_timeout > 0 and now - self.last_chunk > self.chunk_timeout and np.isfinite(self.last_chunk):
            return "no chunk within chunk_timeout"
        return None
