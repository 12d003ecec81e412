"""Chunk playback: turns time-stamped action chunks into a position trajectory sampled at the
control rate.

Each chunk is aligned in time by its observation stamp; steps already in the past when it arrives
are dropped. The trajectory starts from the position being commanded now, so a new chunk never
makes the command jump; with ``crossfade`` the new chunk is blended into the old one over the
overlap, so the velocity does not jump either. Between steps the trajectory is linear.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .chunk import ActionChunk

AGGREGATIONS = ("latest", "crossfade")


@dataclass
class AddResult:
    kept_steps: int
    dropped_steps: int


class ChunkPlayer:
    def __init__(self, dof: int, aggregation: str = "crossfade", crossfade_time: float = 0.25) -> None:
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation {aggregation!r} is not one of {', '.join(AGGREGATIONS)}")
        self.dof = dof
        self.aggregation = aggregation
        self.crossfade_time = float(crossfade_time)
        self.clear()

    def clear(self) -> None:
        self._t = np.zeros(0)
        self._q = np.zeros((0, self.dof))

    @property
    def end_time(self) -> float | None:
        return float(self._t[-1]) if len(self._t) else None

    def remaining(self, now: float) -> float:
        """Seconds of trajectory left after ``now`` (0 when none)."""
        return max(0.0, float(self._t[-1]) - now) if len(self._t) else 0.0

    def sample(self, t: float) -> np.ndarray | None:
        """Position at time ``t``, or None when the trajectory does not cover ``t``."""
        if len(self._t) == 0 or t > self._t[-1] or t < self._t[0]:
            return None
        i = int(np.searchsorted(self._t, t, side="right"))
        if i >= len(self._t):
            return self._q[-1].copy()
        t0, t1 = self._t[i - 1], self._t[i]
        w = 0.0 if t1 <= t0 else (t - t0) / (t1 - t0)
        return (1.0 - w) * self._q[i - 1] + w * self._q[i]

    def add(self, chunk: ActionChunk, now: float, current: np.ndarray) -> AddResult:
        """Play ``chunk`` from ``now``, starting at the commanded position ``current``."""
        times = chunk.step_times()
        future = times > now
        kept = int(np.count_nonzero(future))
        if kept == 0:
            return AddResult(0, chunk.horizon)
        t_new = times[future]
        q_new = chunk.actions[future].astype(np.float64)
        if self.aggregation == "crossfade" and len(self._t) and self._t[-1] > now:
            fade = min(self.crossfade_time, float(self._t[-1]) - now)
            if fade > 0:
                w = np.clip((t_new - now) / fade, 0.0, 1.0)
                old = np.array([self.sample(min(t, self._t[-1])) for t in t_new])
                q_new = w[:, None] * q_new + (1.0 - w[:, None]) * old
        self._t = np.concatenate([[now], t_new])
        self._q = np.vstack([np.asarray(current, dtype=np.float64)[None, :], q_new])
        return AddResult(kept, chunk.horizon - kept)
