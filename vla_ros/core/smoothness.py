"""Smoothness of an executed command stream at chunk boundaries.

One measure for the chunking benchmark, the offline evaluation and the tests: the largest step
between consecutive commands at a chunk boundary, divided by the median step inside chunks. A
stream that shows no jerk where one chunk hands over to the next scores about 1; a jump at each
boundary scores far above it.
"""
from __future__ import annotations

import numpy as np


def step_sizes(positions: np.ndarray) -> np.ndarray:
    """Euclidean size of each step between consecutive rows of ``positions`` (T, D) -> (T-1,)."""
    q = np.asarray(positions, dtype=np.float64)
    if q.ndim != 2 or len(q) < 2:
        raise ValueError(f"positions must be (T >= 2, D), got shape {q.shape}")
    return np.linalg.norm(np.diff(q, axis=0), axis=1)


def boundary_step_ratio(positions: np.ndarray, is_boundary: np.ndarray) -> float:
    """Largest step at a boundary / median step elsewhere.

    Args:
        positions: (T, D) commands at the control rate.
        is_boundary: (T-1,) booleans, True for the steps t -> t+1 that cross from one chunk to
            the next (include the blend window if the aggregation blends).
    Returns:
        The ratio; ``nan`` if there is no boundary or no inside step, ``inf`` if the inside
        steps are all zero but a boundary step is not.
    """
    steps = step_sizes(positions)
    mask = np.asarray(is_boundary, dtype=bool)
    if mask.shape != steps.shape:
        raise ValueError(f"is_boundary must have shape {steps.shape} (one per step), got {mask.shape}")
    if not mask.any() or mask.all():
        return float("nan")
    inside = float(np.median(steps[~mask]))
    worst = float(steps[mask].max())
    if inside == 0.0:
        return 0.0 if worst == 0.0 else float("inf")
    return worst / inside
