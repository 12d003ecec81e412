"""InferenceWorker: one thread, never more than one job, errors reported and survived."""
from __future__ import annotations

import threading
import time

import numpy as np

from vla_ros.policy.worker import InferenceWorker


class Recorder:
    def __init__(self):
        self.calls = []
        self.event = threading.Event()

    def __call__(self, result, error, seconds):
        self.calls.append((result, error, seconds, threading.current_thread().name))
        self.event.set()

    def wait(self):
        assert self.event.wait(10), "on_done was not called"
        self.event.clear()
        return self.calls[-1]


def wait_until_free(worker, timeout=10.0):
    deadline = time.monotonic() + timeout
    while worker.busy and time.monotonic() < deadline:
        time.sleep(0.001)
    return not worker.busy


def test_one_job_at_a_time():
    gate = threading.Event()
    done = Recorder()
    with InferenceWorker(name="w1") as worker:
        assert worker.submit(lambda x: gate.wait(10) and x * 2, 21, on_done=done)
        assert worker.busy
        assert not worker.submit(lambda: 0, on_done=done)  # busy: refused, not queued
        gate.set()
        result, error, seconds, thread = done.wait()
        assert (result, error, thread) == (42, None, "w1") and seconds >= 0
        assert not worker.busy
        assert worker.submit(lambda: "again", on_done=done)
        assert done.wait()[0] == "again"
    assert len(done.calls) == 2 and worker.jobs_done == 2


def test_exceptions_are_reported_and_the_thread_survives():
    done = Recorder()
    worker = InferenceWorker()

    def boom():
        raise RuntimeError("model exploded")

    assert worker.submit(boom, on_done=done)
    result, error, _, _ = done.wait()
    assert result is None and isinstance(error, RuntimeError) and "exploded" in str(error)

    def bad_callback(result, error, seconds):
        raise ValueError("callback bug")

    assert wait_until_free(worker) and worker.submit(lambda: 1, on_done=bad_callback)
    assert wait_until_free(worker) and worker.submit(boom)  # no on_done: the error is logged
    assert wait_until_free(worker) and worker.submit(lambda: "alive", on_done=done)
    assert done.wait()[:2] == ("alive", None)
    assert (worker.jobs_done, worker.jobs_failed) == (2, 2)
    assert worker.close()


def test_on_done_may_submit_the_next_job():
    done = Recorder()
    results = []
    worker = InferenceWorker()

    def chain(result, error, seconds):
        results.append(result)
        if result < 3:
            assert worker.submit(lambda: result + 1, on_done=chain)
        else:
            done.event.set()

    assert worker.submit(lambda: 0, on_done=chain)
    assert done.event.wait(10)
    assert results == [0, 1, 2, 3]
    worker.close()


def test_close_drops_pending_and_refuses_new_jobs():
    worker = InferenceWorker()
    gate = threading.Event()
    assert worker.submit(gate.wait, 10)
    closer = threading.Thread(target=worker.close)
    closer.start()
    gate.set()
    closer.join(10)
    assert worker.closed and not worker.submit(lambda: 1)
    assert worker.close()


def test_runs_the_policy(runtime):
    done = Recorder()
    images = {key: np.zeros((48, 64, 3), np.uint8) for key in runtime.image_keys}
    with InferenceWorker() as worker:
        assert worker.submit(runtime.predict_chunk, images, np.zeros(6, np.float32), "pick", on_done=done)
        actions, error, seconds, _ = done.wait()
    assert error is None and actions.shape == (50, 6) and seconds > 0
