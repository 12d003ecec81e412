"""A single background thread for inference, so middleware callbacks never block.

At most one job exists at a time: :meth:`InferenceWorker.submit` returns False while one is
pending or running (the caller keeps its newest observation and tries again later), so work never
queues up behind a slow model. Each job's result, error and run time go to its ``on_done`` on the
worker thread; a node hands them to its own executor from there.

Example::

    worker = InferenceWorker()
    worker.submit(runtime.predict_chunk, images, state, "pick up the cube",
                  on_done=lambda actions, error, seconds: port.call_soon(...))
    ...
    worker.close()
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

logger = logging.getLogger(__name__)

DoneCallback = Callable[[Any, "BaseException | None", float], None]
"""``on_done(result, error, seconds)``: ``error`` is None on success (else ``result`` is None);
``seconds`` is how long the job ran."""


class InferenceWorker:
    """Runs one job at a time on one background (daemon) thread.

    Exceptions raised by a job are passed to its ``on_done``; exceptions raised by ``on_done`` are
    logged. Neither stops the thread.

    Args:
        name: Thread name.
    """

    def __init__(self, name: str = "vla-inference") -> None:
        self._cond = threading.Condition()
        self._job: tuple[Callable[..., Any], tuple, dict, DoneCallback | None] | None = None
        self._busy = False
        self._closed = False
        self.jobs_done = 0
        """Jobs that returned normally."""
        self.jobs_failed = 0
        """Jobs that raised."""
        self.last_wait_s = 0.0
        """Seconds the last job waited between submit and start."""
        self._submitted = 0.0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        """True from an accepted :meth:`submit` until the job has finished (before its on_done)."""
        with self._cond:
            return self._busy

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(
        self, fn: Callable[..., Any], *args: Any, on_done: DoneCallback | None = None, **kwargs: Any
    ) -> bool:
        """Run ``fn(*args, **kwargs)`` in the background, then ``on_done(result, error, seconds)``.

        Args:
            fn: The job (e.g. ``runtime.predict_chunk``).
            *args, **kwargs: Its arguments.
            on_done: Called on the worker thread when the job ends. The worker is free again by
                then, so ``on_done`` may submit the next job. ``None``: errors are logged.

        Returns:
            True if accepted; False if a job is pending or running, or the worker is closed.
        """
        with self._cond:
            if self._busy or self._closed:
                return False
            self._busy = True
            self._job = (fn, args, kwargs, on_done)
            self._submitted = time.monotonic()
            self._cond.notify()
            return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._job is None and not self._closed:
                    self._cond.wait()
                if self._job is None:  # closed, nothing pending
                    return
                fn, args, kwargs, on_done = self._job
                self._job = None
                self.last_wait_s = time.monotonic() - self._submitted
            started = time.monotonic()
            result, error = None, None
            try:
                result = fn(*args, **kwargs)
            except BaseException as e:  # noqa: BLE001 - reported to on_done, never kills the thread
                error = e
            seconds = time.monotonic() - started
            with self._cond:
                self._busy = False
                if error is None:
                    self.jobs_done += 1
                else:
                    self.jobs_failed += 1
            if on_done is None:
                if error is not None:
                    logger.error("inference worker: job %r failed", fn, exc_info=error)
                continue
            try:
                on_done(result, error, seconds)
            except Exception:
                logger.exception("inference worker: on_done raised")

    def close(self, timeout: float | None = 5.0) -> bool:
        """Stop accepting jobs, drop one not yet started, wait for a running one to finish.

        Args:
            timeout: Seconds to wait for the thread; None waits as long as it takes.

        Returns:
            True if the thread has ended.
        """
        with self._cond:
            self._closed = True
            if self._job is not None:
                self._job = None
                self._busy = False
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def __enter__(self) -> "InferenceWorker":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
