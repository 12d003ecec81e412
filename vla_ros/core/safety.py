"""Safety limits applied to every command a bridge sends."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SafetyLimits:
    """Position and velocity limits (per joint, SI); counts what it had to change."""

    lower: np.ndarray
    upper: np.ndarray
    max_velocity: np.ndarray
    counts: dict[str, int] = field(default_factory=lambda: {"position_clamped": 0, "velocity_clamped": 0})

    @classmethod
    def from_spec(cls, spec) -> "SafetyLimits":
        return cls(spec.lower, spec.upper, spec.max_velocity)

    def apply(self, target: np.ndarray, previous: np.ndarray | None, dt: float) -> np.ndarray:
        """``target`` clamped into the position limits and, from ``previous`` over ``dt``
        seconds, into the velocity limits. ``target`` must be finite (callers reject others)."""
        out = np.clip(target, self.lower, self.upper)
        if np.any(out != target):
            self.counts["position_clamped"] += 1
        if previous is not None and dt > 0:
            step = self.max_velocity * dt
            limited = np.clip(out, previous - step, previous + step)
            if np.any(limited != out):
                self.counts["velocity_clamped"] += 1
            out = np.clip(limited, self.lower, self.upper)
        return out
