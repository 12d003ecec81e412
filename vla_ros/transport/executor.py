"""A single-threaded executor: a queue of ready callbacks plus drift-free periodic timers.

The dds and inproc backends share it; middleware threads hand work over with :meth:`post`
and every callback then runs on the thread that spins, one at a time (rclpy's
SingleThreadedExecutor semantics).
"""
from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from typing import Callable

log = logging.getLogger(__name__)


class ExecutorTimer:
    def __init__(self, executor: "Executor", period: float, callback: Callable[[], None]) -> None:
        if not period > 0:
            raise ValueError(f"timer period must be > 0 s, got {period}")
        self.period = float(period)
        self.callback = callback
        self.cancelled = False
        self._executor = executor

    def cancel(self) -> None:
        self.cancelled = True
        self._executor.wake()


class Executor:
    def __init__(self) -> None:
        self._ready: deque[Callable[[], None]] = deque()
        self._timers: list[tuple[float, int, ExecutorTimer]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition(threading.RLock())  # RLock: stop() may run in a signal handler
        self._stopped = False

    # -- producers (any thread) ---------------------------------------------------------------
    def post(self, callback: Callable[[], None]) -> None:
        with self._cond:
            self._ready.append(callback)
            self._cond.notify()

    def add_timer(self, period: float, callback: Callable[[], None]) -> ExecutorTimer:
        timer = ExecutorTimer(self, period, callback)
        with self._cond:
            heapq.heappush(self._timers, (time.monotonic() + timer.period, next(self._seq), timer))
            self._cond.notify()
        return timer

    def wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    @property
    def stopped(self) -> bool:
        return self._stopped

    # -- the spinning thread ------------------------------------------------------------------
    def _next_due(self, now: float) -> tuple[Callable[[], None] | None, float]:
        """(callback to run now or None, seconds until something is due)."""
        if self._ready:
            return self._ready.popleft(), 0.0
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        if not self._timers:
            return None, float("inf")
        due, _, timer = self._timers[0]
        if due > now:
            return None, due - now
        heapq.heappop(self._timers)
        nxt = due + timer.period
        if nxt < now:  # fell behind by more than a period: skip missed ticks, keep the phase
            nxt += timer.period * ((now - nxt) // timer.period + 1)
        heapq.heappush(self._timers, (nxt, next(self._seq), timer))
        return timer.callback, 0.0

    def spin_once(self, timeout: float = 0.0) -> bool:
        """Run one due callback, waiting up to ``timeout`` s; True if one ran."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._stopped:
                    return False
                now = time.monotonic()
                callback, wait = self._next_due(now)
                if callback is not None:
                    break
                remaining = deadline - now
                if remaining <= 0:
                    return False
                self._cond.wait(min(wait, remaining))
        self._run(callback)
        return True

    def spin_for(self, duration: float) -> None:
        """Run callbacks for ``duration`` seconds (tests and tools)."""
        end = time.monotonic() + duration
        while not self._stopped:
            left = end - time.monotonic()
            if left <= 0:
                return
            self.spin_once(left)

    def spin(self) -> None:
        while not self._stopped:
            self.spin_once(1.0)

    @staticmethod
    def _run(callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception:  # a callback's error must not stop the node
            log.exception("callback %r raised", callback)
