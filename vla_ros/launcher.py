"""Starting the nodes of a launch plan as separate processes (no ROS needed).

Each node runs as ``python -m vla_ros.nodes.<module> --ros-args ...`` on the dds backend, with the
same name and parameters ``ros2 launch`` would give it. Output is prefixed with the node name.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Callable

from .launch_plan import NodeSpec

MODULES = {
    "camera_publisher": "vla_ros.nodes.camera",
    "state_publisher": "vla_ros.nodes.state",
    "policy_node": "vla_ros.nodes.policy",
    "controller_bridge": "vla_ros.nodes.bridge",
}


def node_command(spec: NodeSpec) -> list[str]:
    return [sys.executable, "-u", "-m", MODULES[spec.executable], *spec.ros_args()]


def dds_environment(loopback: bool = True, base: dict | None = None) -> dict[str, str]:
    """Environment for dds-backend node processes (loopback-only unless ``loopback`` is False)."""
    from .transport.dds_env import loopback_env

    env = dict(os.environ if base is None else base)
    env["VLA_ROS_TRANSPORT"] = "dds"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return loopback_env(env) if loopback else env


class Launcher:
    """Runs node processes; stops them all (SIGINT, then SIGTERM, then SIGKILL) on :meth:`stop`."""

    def __init__(self, plan: list[NodeSpec], env: dict[str, str] | None = None,
                 output: IO[str] | None = sys.stdout, on_line: Callable[[str, str], None] | None = None) -> None:
        self.plan = plan
        self.env = env if env is not None else dds_environment()
        self.output = output
        self.on_line = on_line
        self.procs: dict[str, subprocess.Popen] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> "Launcher":
        for spec in self.plan:
            proc = subprocess.Popen(node_command(spec), env=self.env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, bufsize=1,
                                    start_new_session=True)
            self.procs[spec.name] = proc
            t = threading.Thread(target=self._pump, args=(spec.name, proc), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _pump(self, name: str, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            if self.on_line is not None:
                self.on_line(name, line)
            if self.output is not None:
                with self._lock:
                    print(f"[{name}] {line}", file=self.output, flush=True)

    def poll(self) -> dict[str, int | None]:
        return {name: p.poll() for name, p in self.procs.items()}

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        self.procs[name].send_signal(sig)

    def stop(self, timeout: float = 5.0) -> dict[str, int | None]:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            alive = [p for p in self.procs.values() if p.poll() is None]
            if not alive:
                break
            for p in alive:
                try:
                    p.send_signal(sig)
                except ProcessLookupError:
                    pass
            end = time.monotonic() + timeout
            while time.monotonic() < end and any(p.poll() is None for p in alive):
                time.sleep(0.05)
        for t in self._threads:
            t.join(timeout=1.0)
        return self.poll()

    def __enter__(self) -> "Launcher":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
