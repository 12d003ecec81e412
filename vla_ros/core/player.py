"""Chunk playback: turns time-stamped action chunks into a position trajectory sampled at the
control rate.

Each chunk is aligned in time by its observation stamp: step ``k`` is meant for
``stamp + (k + 1) * step_period``; steps already in the past when it arrives are dropped.
The trajectory is kept as knots (time, position) and is linear between them; it always starts at
``(now, current)``, the position being commanded when the chunk arrives, so a new chunk never
makes the command jump.

With asynchronous execution a new chunk arrives while the previous one is still playing; the
``aggregation`` decides how the two overlap:

- ``crossfade`` (default): a smooth cross-fade from the trajectory being played into the new
  chunk over the whole overlap (at least ``crossfade_time``), with a C1 weight
  (smoothstep ``3s^2 - 2s^3``): position and velocity are continuous where the fade starts and
  ends, and the offset between two chunks is spread over the overlap instead of appearing as a
  jump when the new chunk starts (or when the old one would have ended). A difference between the
  commanded ``current`` and the old trajectory (a safety clamp, one control period of lag) fades
  out the same way. From a standstill (nothing playing, or after a new instruction) the new chunk
  fades in from ``current`` over ``crossfade_time``.
- ``latest``: the new chunk replaces the old one (linear from ``current`` to its first step).
- ``weighted_average``: LeRobot async inference's aggregation: where both chunks have a step,
  ``0.3 * old + 0.7 * new``, elsewhere the new chunk.
- ``temporal_ensemble``: ACT's temporal ensembling: every time is the weighted mean of all
  chunks that predicted it, the ``i``-th prediction of a time weighted ``exp(-coeff * i)``
  (older first; LeRobot's ``ACTTemporalEnsembler``, coeff 0.01).

A chunk whose ``instruction_id`` differs from the one playing resets the queue first (the old
instruction's actions are dropped), then plays from ``current`` as from a standstill.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .chunk import ActionChunk

AGGREGATIONS = ("crossfade", "latest", "weighted_average", "temporal_ensemble")
DEFAULT_AGGREGATION = "crossfade"
DEFAULT_CROSSFADE_TIME = 0.5
"""``crossfade``: shortest fade (s). Chunks arriving back to back (latency near half a chunk) overlap
only briefly; fading over at least this long keeps the boundary step small there too."""
WEIGHTED_AVERAGE_NEW = 0.7
"""``weighted_average``: weight of the new chunk where two overlap (LeRobot: 0.3 old, 0.7 new)."""
TEMPORAL_ENSEMBLE_COEFF = 0.01
"""``temporal_ensemble``: ACT's ``temporal_ensemble_coeff`` (weights ``exp(-coeff * i)``)."""


def smoothstep(x: np.ndarray) -> np.ndarray:
    """0 -> 1 with zero slope at both ends (C1), ``3x^2 - 2x^3`` on [0, 1], clipped outside."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _interp(t: np.ndarray, knots_t: np.ndarray, knots_q: np.ndarray) -> np.ndarray:
    """Piecewise-linear (T, D) values at times ``t`` (held constant beyond the first/last knot)."""
    return np.stack([np.interp(t, knots_t, knots_q[:, j]) for j in range(knots_q.shape[1])], axis=1)


@dataclass
class AddResult:
    kept_steps: int
    """Steps of the chunk still in the future, now in the trajectory."""
    dropped_steps: int
    """Steps already in the past when the chunk arrived."""
    merged: bool = False
    """The chunk was combined with a trajectory still playing (not a start from standstill)."""
    reset: bool = False
    """The chunk carried a new instruction: the queue of the old one was dropped first."""
    blend_end: float | None = None
    """Until this time the command mixes the new chunk with what played before it (the fade, the
    overlap, or the hand-over to the first step); None when nothing was kept."""


class ChunkPlayer:
    """The trajectory a controller bridge samples at its control rate.

    Args:
        dof: Number of joints (columns of the chunks' actions).
        aggregation: One of :data:`AGGREGATIONS`.
        crossfade_time: ``crossfade``: shortest fade (s), and the fade-in from a standstill.
        ensemble_coeff: ``temporal_ensemble``: the exponential weight coefficient.
    """

    def __init__(self, dof: int, aggregation: str = DEFAULT_AGGREGATION,
                 crossfade_time: float = DEFAULT_CROSSFADE_TIME,
                 ensemble_coeff: float = TEMPORAL_ENSEMBLE_COEFF) -> None:
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation {aggregation!r} is not one of {', '.join(AGGREGATIONS)}")
        if not (np.isfinite(crossfade_time) and crossfade_time >= 0.0):
            raise ValueError(f"crossfade_time {crossfade_time} must be >= 0 s")
        self.dof = int(dof)
        self.aggregation = aggregation
        self.crossfade_time = float(crossfade_time)
        self.ensemble_coeff = float(ensemble_coeff)
        self.clear()

    def clear(self) -> None:
        """Forget the trajectory (nothing to play until the next chunk)."""
        self._t = np.zeros(0)
        self._q = np.zeros((0, self.dof))
        self._n = np.zeros(0)  # temporal_ensemble: how many chunks predicted each knot
        self._last_sample: tuple[float, np.ndarray] | None = None
        self.instruction_id: int | None = None

    @property
    def end_time(self) -> float | None:
        return float(self._t[-1]) if len(self._t) else None

    def remaining(self, now: float) -> float:
        """Seconds of trajectory left after ``now`` (0 when none)."""
        return max(0.0, float(self._t[-1]) - now) if len(self._t) else 0.0

    def playing(self, now: float) -> bool:
        """True when the trajectory still has positions after ``now``."""
        return bool(len(self._t)) and float(self._t[-1]) > now

    def sample(self, t: float) -> np.ndarray | None:
        """Position at time ``t``, or None when the trajectory does not cover ``t``."""
        if len(self._t) == 0 or t > self._t[-1] or t < self._t[0]:
            self._last_sample = None
            return None
        i = int(np.searchsorted(self._t, t, side="right"))
        if i >= len(self._t):
            q = self._q[-1].copy()
        else:
            t0, t1 = self._t[i - 1], self._t[i]
            w = 0.0 if t1 <= t0 else (t - t0) / (t1 - t0)
            q = (1.0 - w) * self._q[i - 1] + w * self._q[i]
        self._last_sample = (float(t), q.copy())
        return q

    def add(self, chunk: ActionChunk, now: float, current: np.ndarray,
            current_time: float | None = None) -> AddResult:
        """Play ``chunk`` from ``now``, starting at the commanded position ``current``.

        Args:
            chunk: The new chunk (checked by :meth:`ActionChunk.problem` before).
            now: Its arrival time (same clock as the chunk stamps and :meth:`sample`).
            current: The position being commanded.
            current_time: When ``current`` was commanded (the last control period, <= ``now``).
                Default: the time of the last :meth:`sample` when ``current`` is what it returned
                (a bridge sends the sampled position unless a limit clamped it), else ``now``.
                The trajectory continues from ``(current_time, current)``, so a chunk arriving
                between two control periods does not make the command lag by part of a period.
        """
        if chunk.action_dim != self.dof:
            raise ValueError(f"chunk {chunk.chunk_id}: action_dim {chunk.action_dim} != player dof {self.dof}")
        cur = np.asarray(current, dtype=np.float64).reshape(-1)
        if cur.shape != (self.dof,):
            raise ValueError(f"current position has {cur.shape[0]} values, expected {self.dof}")
        if current_time is None:
            last = self._last_sample
            following = last is not None and self.playing(now) and np.array_equal(last[1], cur)
            current_time = last[0] if following else now
        tc = min(float(current_time), float(now))
        reset = self.instruction_id is not None and chunk.instruction_id != self.instruction_id
        if reset:
            self.clear()  # the old instruction's queue is dropped even when this chunk is stale
        times = chunk.step_times()
        future = times > now
        kept = int(np.count_nonzero(future))
        if kept == 0:
            return AddResult(0, chunk.horizon, reset=reset)
        t_new = times[future]
        q_new = chunk.actions[future].astype(np.float64)
        merged = self.playing(now)
        n_new = np.ones(kept)
        blend_end = float(t_new[0])
        if self.aggregation == "crossfade":
            q_new, blend_end = self._crossfade(t_new, q_new, now, tc, cur, merged)
        elif merged and self.aggregation in ("weighted_average", "temporal_ensemble"):
            old_end = float(self._t[-1])
            overlap = t_new <= old_end
            if overlap.any():
                old = _interp(t_new[overlap], self._t, self._q)
                if self.aggregation == "weighted_average":
                    a = WEIGHTED_AVERAGE_NEW
                    q_new[overlap] = (1.0 - a) * old + a * q_new[overlap]
                else:
                    n_old = np.rint(np.interp(t_new[overlap], self._t, self._n))
                    w_old = self._weight_sum(n_old)
                    w_this = np.exp(-self.ensemble_coeff * n_old)
                    total = (w_old + w_this)[:, None]
                    q_new[overlap] = (old * w_old[:, None] + q_new[overlap] * w_this[:, None]) / total
                    n_new[overlap] = n_old + 1
                blend_end = max(blend_end, float(t_new[overlap][-1]))
        n_now = float(np.interp(tc, self._t, self._n)) if merged else 1.0
        self._t = np.concatenate([[tc], t_new])
        self._q = np.vstack([cur[None, :], q_new])
        self._n = np.concatenate([[n_now], n_new])
        self.instruction_id = chunk.instruction_id
        return AddResult(kept, chunk.horizon - kept, merged=merged, reset=reset, blend_end=blend_end)

    def _weight_sum(self, n: np.ndarray) -> np.ndarray:
        """Sum of the first ``n`` ensemble weights ``exp(-coeff * i)``."""
        c = self.ensemble_coeff
        return n if c == 0.0 else (1.0 - np.exp(-c * n)) / (1.0 - np.exp(-c))

    def _crossfade(self, t_new: np.ndarray, q_new: np.ndarray, now: float, tc: float, cur: np.ndarray,
                   merged: bool) -> tuple[np.ndarray, float]:
        """``q = new + (1 - w) * (before - new)``: ``before`` is the old trajectory (moved to pass
        through ``current``) or, from a standstill, ``current``; ``w`` rises smoothly 0 -> 1."""
        if merged:
            old_end = float(self._t[-1])
            fade = max(self.crossfade_time, old_end - now)
            # where the old trajectory has ended, keep its last offset to the new chunk
            t_old = np.minimum(t_new, old_end)
            gap = _interp(t_old, self._t, self._q) - _interp(t_old, t_new, q_new)
            gap += cur - _interp(np.array([tc]), self._t, self._q)[0]  # a clamp fades out too
        else:
            fade = self.crossfade_time
            gap = cur[None, :] - q_new
        if fade <= 0.0:
            return q_new, float(t_new[0])
        w = smoothstep((t_new - now) / fade)
        return q_new + (1.0 - w)[:, None] * gap, now + fade
