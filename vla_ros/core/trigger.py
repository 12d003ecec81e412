"""When to start the next inference while the current chunk is still playing.

Asynchronous chunk execution (LeRobot's async inference, done inside the policy node): the robot
plays one chunk while the policy computes the next from a newer observation. The next inference
must start early enough that its chunk arrives before the current one runs out, or the robot
stands still (starves); starting much earlier only costs compute and reactivity.

:class:`ReplanTrigger` answers "when is the next inference due?" for the chunk that was just
published. Two modes:

- ``threshold``: start when ``threshold`` of the current chunk's duration is left (LeRobot's
  ``chunk_size_threshold``). It ignores the latency: an inference slower than the time left
  makes the robot wait.
- ``latency`` (default): the same, or earlier as soon as the time left falls to the expected
  latency plus ``margin``, so the next chunk arrives ``margin`` before this one ends. The expected
  latency is a running estimate: the ``quantile`` (default the 90th percentile) of the last
  ``window`` observation-to-chunk times, so jitter is covered and a slower model is noticed
  within a few chunks.

Pure Python + numpy (no middleware, no clock): the policy node and ``bench/chunking.py`` use the
same class.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from .chunk import ActionChunk

TRIGGER_MODES = ("latency", "threshold")


class ReplanTrigger:
    """Decides when the next inference starts.

    Args:
        mode: ``latency`` or ``threshold`` (see the module docstring).
        threshold: Fraction of a chunk's duration left when the next inference starts, 0..1
            (1 starts it at once, back to back; 0 when the chunk has ended).
        margin: ``latency`` mode: seconds the next chunk should arrive before the current one
            ends, beyond the expected latency.
        quantile: Percentile of recent latencies used as the expected latency (0..100).
        window: How many recent latencies the estimate uses.
    """

    def __init__(self, mode: str = "latency", threshold: float = 0.5, margin: float = 0.1,
                 quantile: float = 90.0, window: int = 50) -> None:
        if mode not in TRIGGER_MODES:
            raise ValueError(f"replan mode {mode!r} is not one of {', '.join(TRIGGER_MODES)}")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"replan threshold {threshold} must be within 0..1 (fraction of a chunk)")
        if not margin >= 0.0:
            raise ValueError(f"replan margin {margin} must be >= 0 s")
        if not 0.0 <= quantile <= 100.0:
            raise ValueError(f"latency quantile {quantile} must be within 0..100")
        if window < 1:
            raise ValueError(f"latency window {window} must be >= 1")
        self.mode = mode
        self.threshold = float(threshold)
        self.margin = float(margin)
        self.quantile = float(quantile)
        self._latencies: deque[float] = deque(maxlen=int(window))

    def record_latency(self, seconds: float) -> None:
        """One measured time from observation to chunk available (non-finite or negative: ignored)."""
        if np.isfinite(seconds) and seconds >= 0.0:
            self._latencies.append(float(seconds))

    def reset_latency(self) -> None:
        self._latencies.clear()

    @property
    def latencies(self) -> list[float]:
        return list(self._latencies)

    def expected_latency(self) -> float:
        """The running latency estimate (s); 0 before the first measurement."""
        if not self._latencies:
            return 0.0
        return float(np.percentile(np.fromiter(self._latencies, float), self.quantile))

    def lead(self, duration: float) -> float:
        """Seconds of a chunk lasting ``duration`` left when the next inference should start."""
        duration = max(0.0, float(duration))
        lead = self.threshold * duration
        if self.mode == "latency":
            lead = max(lead, self.expected_latency() + self.margin)
        return min(lead, duration)

    def due(self, stamp: float, duration: float) -> float:
        """When the inference after a chunk (observation ``stamp``, ``duration`` s) should start."""
        return float(stamp) + max(0.0, float(duration)) - self.lead(duration)

    def due_after(self, chunk: ActionChunk) -> float:
        """:meth:`due` for a chunk: its steps end at ``chunk.end_time``."""
        return self.due(chunk.stamp, chunk.end_time - chunk.stamp)

    def __repr__(self) -> str:
        return (f"ReplanTrigger(mode={self.mode!r}, threshold={self.threshold}, margin={self.margin}, "
                f"expected_latency={self.expected_latency():.3f})")
