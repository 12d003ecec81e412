"""Helpers of the dds transport tests: peer processes and waiting without timing asserts."""
from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from vla_ros.transport.dds_env import loopback_env

PEER = Path(__file__).resolve().parent / "dds_peer.py"
REPO = Path(__file__).resolve().parents[2]
#: Generous: the machine may be loaded; nothing here asserts on time.
TIMEOUT = 30.0


class Peer:
    """A dds_peer.py process; stdout lines are collected by a thread."""

    def __init__(self, *args: str) -> None:
        env = loopback_env(force=True)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            [sys.executable, str(PEER), *args], env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.errors: list[str] = []
        self._threads = [threading.Thread(target=self._read, daemon=True),
                         threading.Thread(target=self._read_errors, daemon=True)]
        for thread in self._threads:
            thread.start()
        first = self.readline()
        if first != "READY":
            self.kill()
            raise RuntimeError(f"peer {args} did not start: {first!r}\n{self.stderr()}")

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _read_errors(self) -> None:
        for line in self.proc.stderr:
            self.errors.append(line)

    def stderr(self) -> str:
        return "".join(self.errors)

    def readline(self, timeout: float = TIMEOUT) -> str | None:
        """The next stdout line; None at EOF or after ``timeout``."""
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def send(self, line: str = "stop") -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = TIMEOUT) -> int:
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        for thread in self._threads:  # they end at EOF
            thread.join(timeout=5.0)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except Exception:
                pass


def wait_for(predicate, port=None, timeout: float = TIMEOUT) -> bool:
    """Spin ``port`` (if given) until ``predicate()`` is true; False after ``timeout``."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            return False
        if port is not None:
            port.spin_once(0.02)
        else:
            time.sleep(0.02)
    return True
