"""ActionChunk: a block of future actions computed from one observation (middleware free)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass
class ActionChunk:
    """``actions[k]`` is meant for time ``stamp + (k + 1) * step_period`` (SI / radians).

    ``instruction_id`` names the instruction the chunk was computed for (the policy node counts
    instructions up from 1); a player resets its queue when it changes.
    """

    stamp: float
    chunk_id: int
    joint_names: list[str]
    actions: np.ndarray  # (horizon, action_dim) float32
    step_period: float
    model_variant: str = ""
    inference_latency: float = 0.0
    instruction_id: int = 0

    @property
    def horizon(self) -> int:
        return int(self.actions.shape[0])

    @property
    def action_dim(self) -> int:
        return int(self.actions.shape[1])

    def step_times(self) -> np.ndarray:
        return self.stamp + self.step_period * np.arange(1, self.horizon + 1)

    @property
    def end_time(self) -> float:
        return self.stamp + self.step_period * self.horizon

    def problem(self, expected_names: Sequence[str]) -> str | None:
        """Why this chunk must not drive the robot, or None if it may."""
        if self.actions.ndim != 2 or self.actions.shape[0] < 1:
            return f"chunk {self.chunk_id}: actions have shape {self.actions.shape}, expected (horizon>=1, {len(expected_names)})"
        if list(self.joint_names) != list(expected_names):
            missing = [n for n in expected_names if n not in self.joint_names]
            extra = [n for n in self.joint_names if n not in expected_names]
            what = (f"missing {missing}" if missing else "") + (f" unexpected {extra}" if extra else "")
            return f"chunk {self.chunk_id}: joint names {list(self.joint_names)} do not match the robot ({what.strip() or 'order differs'})"
        if self.actions.shape[1] != len(expected_names):
            return f"chunk {self.chunk_id}: action_dim {self.actions.shape[1]} != {len(expected_names)} joints"
        if not np.all(np.isfinite(self.actions)):
            bad = int(np.count_nonzero(~np.isfinite(self.actions)))
            return f"chunk {self.chunk_id}: {bad} non-finite action value(s)"
        if not (np.isfinite(self.step_period) and self.step_period > 0):
            return f"chunk {self.chunk_id}: step_period {self.step_period} must be > 0"
        if not (np.isfinite(self.stamp) and self.stamp > 0):
            return f"chunk {self.chunk_id}: stamp {self.stamp} is not a valid observation time"
        return None
