"""Faults against the real nodes as processes over Cyclone DDS (loopback, a domain of its own).

One set of processes serves every case: the state publisher (mock SO-100), the controller bridge
and a chunk-publishing policy process (the policy node's chunk QoS: a 20 ms liveliness lease).
The commands the bridge sends and its /diagnostics are read as raw bytes off DDS and decoded
with a typestore built here from the .msg files. Cases run in file order and share the stack:
the policy process is killed first, then this test publishes the chunks itself.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _wire import RawTap as Tap, dds_domain, independent_typestore as typestore

from vla_ros.launch_plan import NodeSpec
from vla_ros.launcher import Launcher
from vla_ros.robots import load_robot

ROOT = Path(__file__).resolve().parent.parent
CMD = "arm_controller/joint_trajectory"
PERIOD = 0.02  # so100 control rate 50 Hz
MAX_CHUNK_STEP = 0.3

# A policy process: 50-step chunks of a slow sine on the first joint, from the measured pose.
POLICY = r"""
import numpy as np
from vla_ros.robots import load_robot
from vla_ros.transport import make_port
from vla_ros.transport.port import QoS
spec = load_robot("so100")
port = make_port("policy_node", "dds")
pub = port.publisher("vla/action_chunk", "vla_ros/msg/ActionChunk", QoS(reliable=True, depth=10, liveliness_lease=0.02))
seen = {}
port.subscribe("joint_states", "sensor_msgs/msg/JointState", lambda m: seen.update(q=np.asarray(m.position)))
k = 0
while True:
    port.spin_for(0.3)
    if "q" not in seen:
        continue
    t = port.now()
    steps = t + np.arange(1, 51) / 30
    a = np.tile(seen["q"], (50, 1))  # from the observed pose, as a policy does
    a[:, 0] += 0.3 * (np.sin(2 * np.pi * 0.4 * steps) - np.sin(2 * np.pi * 0.4 * t))
    k += 1
    pub.publish(port.new("vla_ros/msg/ActionChunk", header=port.header(t), chunk_id=k,
                         joint_names=spec.joint_names, horizon=50, action_dim=6, step_period=1 / 30,
                         actions=a.astype(np.float32).reshape(-1), model_variant="stub"))
"""


class Stack:
    def __init__(self, launcher, policy, tap, port, lines):
        self.launcher, self.policy, self.tap, self.port, self.lines = launcher, policy, tap, port, lines
        self.store = typestore()
        self.spec = load_robot("so100")
        self.chunk_pub = None
        self.k = 1000

    def decode(self, raw: bytes, msg_type: str):
        return self.store.deserialize_cdr(raw, msg_type)

    def commands(self, since: float = 0.0) -> list[tuple[float, np.ndarray]]:
        return [(t, np.asarray(self.decode(b, "trajectory_msgs/msg/JointTrajectory").points[0].positions))
                for t, b in list(self.tap.samples[CMD]) if t >= since]

    def diagnostics(self) -> dict[str, str]:
        raw = self.tap.samples["diagnostics"][-1][1]
        status = self.decode(raw, "diagnostic_msgs/msg/DiagnosticArray").status[0]
        return {kv.key: kv.value for kv in status.values} | {"_message": status.message, "_level": status.level}

    def wait(self, pred, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred():
                return
            dead = {n: c for n, c in self.launcher.poll().items() if c is not None}
            assert not dead, f"node(s) exited {dead}:\n" + "\n".join(self.lines[-30:])
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; diagnostics {self.diagnostics() if self.tap.samples['diagnostics'] else None}\n"
                             + "\n".join(self.lines[-30:]))

    def send(self, target_offset: float = 0.3, names=None, nan: bool = False, jump: float = 0.0) -> None:
        """A chunk from this process: joint 0 moving toward home + offset (and faults)."""
        from vla_ros.transport.port import RELIABLE_QOS

        if self.chunk_pub is None:
            self.chunk_pub = self.port.publisher("vla/action_chunk", "vla_ros/msg/ActionChunk", RELIABLE_QOS)
            self.port.spin_for(0.5)  # discovery
        t = self.port.now()
        q = np.asarray(self.decode(self.tap.samples["joint_states"][-1][1], "sensor_msgs/msg/JointState").position)
        self.sign = -getattr(self, "sign", 1.0)
        a = np.tile(q, (50, 1))  # from the observed pose, as a policy does
        a[:, 0] += self.sign * np.linspace(0.0, target_offset, 51)[1:]
        if nan:
            a[20, 3] = np.nan
        if jump:
            a[25:, 2] += jump
        self.k += 1
        self.chunk_pub.publish(self.port.new(
            "vla_ros/msg/ActionChunk", header=self.port.header(t), chunk_id=self.k,
            joint_names=names or self.spec.joint_names, horizon=50, action_dim=6, step_period=1 / 30,
            actions=a.astype(np.float32).reshape(-1), model_variant="test"))

    def flag(self, topic: str, value: bool) -> None:
        from vla_ros.transport.port import RELIABLE_QOS

        pub = self.port.publisher(topic, "std_msgs/msg/Bool", RELIABLE_QOS)
        end = time.monotonic() + 5
        while pub.subscription_count == 0 and time.monotonic() < end:
            self.port.spin_once(0.05)
        pub.publish(self.port.new("std_msgs/msg/Bool", data=value))
        self.port.spin_for(0.1)

    def moving(self, since: float, tol: float = 1e-9) -> bool:
        cmds = self.commands(since)
        return len(cmds) > 3 and any(not np.allclose(c[1], cmds[0][1], atol=tol) for c in cmds[1:])


@pytest.fixture(scope="module")
def stack():
    from vla_ros.transport import make_port

    domain = random.randint(200, 230)
    with dds_domain(domain) as env:
        yield from _stack(env, domain, make_port)


def _stack(env: dict[str, str], domain: int, make_port):
    lines: list[str] = []
    plan = [
        NodeSpec("state_publisher", "state_publisher", {"robot": "so100", "driver": "mock"}),
        NodeSpec("controller_bridge", "controller_bridge", {
            "robot": "so100", "start_enabled": True, "max_chunk_step": MAX_CHUNK_STEP,
            "diagnostics_period": 0.2, "soft_start_time": 0.2}),
    ]
    launcher = Launcher(plan, env, output=None, on_line=lambda n, l: lines.append(f"[{n}] {l}")).start()
    policy = subprocess.Popen([sys.executable, "-c", POLICY], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    tap = Tap({CMD: "trajectory_msgs/msg/JointTrajectory", "diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
               "joint_states": "sensor_msgs/msg/JointState"}, domain)
    port = make_port("fault_injector", "dds")
    try:
        yield Stack(launcher, policy, tap, port, lines)
    finally:
        port.shutdown()
        tap.close()
        if policy.poll() is None:
            policy.kill()
        policy.wait()
        launcher.stop()


def test_kill_the_policy_process_holds_within_two_control_periods(stack):
    s = stack
    s.wait(lambda: s.tap.samples["diagnostics"] and s.diagnostics()["mode"] == "running", 90, "the bridge running")
    s.wait(lambda: s.moving(time.time() - 0.5), 30, "motion on the wire")
    killed = time.time()
    s.policy.send_signal(signal.SIGKILL)
    s.wait(lambda: "policy lost" in s.diagnostics()["hold_reason"], 10, "'policy lost' in diagnostics")
    time.sleep(0.3)
    after = s.commands(killed)
    final = after[-1][1]
    moving = [t for t, q in after if not np.allclose(q, final)]
    # commands that still moved after SIGKILL: the liveliness lease (20 ms, one period) plus the
    # period in which the bridge notices; the sine moves every period, so this counts periods
    print(f"\nmoving commands after SIGKILL: {len(moving)} (last {1e3 * (max(moving) - killed) if moving else 0:.0f} ms)")
    assert len(moving) <= 2 + 1, f"{len(moving)} moving commands after the policy died"
    assert s.diagnostics()["_level"] == 2
    assert any("chunk publisher is gone" in l for l in s.lines if l.startswith("[controller_bridge]"))


def test_frozen_joint_states_make_the_bridge_hold(stack):
    s = stack
    s.send()
    s.wait(lambda: s.diagnostics()["mode"] == "running", 10, "running again on this process's chunks")
    state_pid = s.launcher.procs["state_publisher"].pid
    os.kill(state_pid, signal.SIGSTOP)
    try:
        s.wait(lambda: "joint_states stale" in s.diagnostics()["hold_reason"], 10, "the stale-state hold")
        s.send()  # chunks keep coming: still no motion
        since = time.time()
        time.sleep(0.4)
        assert not s.moving(since), "commands held while joint states are frozen"
    finally:
        os.kill(state_pid, signal.SIGCONT)
    s.send()
    s.wait(lambda: s.diagnostics()["mode"] == "running", 10, "motion resumes with joint states")


@pytest.mark.parametrize("fault, counter", [
    ("nan", "chunks_rejected_nonfinite"),
    ("names", "chunks_rejected_names"),
    ("jump", "chunks_rejected_step"),
])
def test_bad_chunks_are_rejected_and_never_reach_the_wire(stack, fault, counter):
    s = stack
    s.send()
    s.wait(lambda: s.diagnostics()["mode"] == "running", 10, "running")
    before = int(s.diagnostics()[counter])
    since = time.time()
    if fault == "nan":
        s.send(nan=True)
    elif fault == "names":
        s.send(names=[*s.spec.joint_names[:-1], "jaw"])
    else:
        s.send(jump=1.0)  # 1 rad between steps 24 and 25 of joint 2
    s.wait(lambda: int(s.diagnostics()[counter]) == before + 1, 10, f"{counter} counted")
    assert "rejected" in s.diagnostics()["hold_reason"]
    time.sleep(0.3)
    held = s.commands(time.time() - 0.25)
    assert len(held) > 5 and all(np.allclose(q, held[0][1]) for _, q in held), "holding"
    cmds = np.array([q for _, q in s.commands(since)])
    assert np.all(np.isfinite(cmds))
    assert np.all(cmds[:, 2] < s.spec.home[2] + 0.5), "the jump never reached the robot"


def test_estop_during_motion_latches_until_enable(stack):
    s = stack
    s.send()
    s.wait(lambda: s.moving(time.time() - 0.3), 10, "motion")
    s.flag("vla/estop", True)
    s.wait(lambda: s.diagnostics()["mode"] == "estop", 5, "e-stop in diagnostics")
    s.send()  # chunks during the e-stop are ignored
    s.flag("vla/estop", False)  # releasing the e-stop topic is not enough
    since = time.time()
    time.sleep(0.5)
    assert not s.moving(since) and s.diagnostics()["hold_reason"] == "e-stop"
    assert int(s.diagnostics()["chunks_ignored_estop"]) >= 1
    s.flag("vla/enable", True)
    s.wait(lambda: s.diagnostics()["estopped"] == "false", 5, "the e-stop released")
    s.send()  # (a chunk sent before the enable was processed would be ignored: topics are not ordered)
    s.wait(lambda: s.moving(time.time() - 0.3), 10, "motion after enable")


def test_every_command_on_the_wire_was_safe(stack):
    """Over all the cases above: finite, inside the limits, steps within the step cap while moving.

    (The first command after a hold restarts from the measured pose, which may differ from the
    held command by the arm's tracking error: that is the soft start, not a step.)"""
    s = stack
    q = np.array([p for _, p in s.commands()])
    assert len(q) > 200
    assert np.all(np.isfinite(q))
    assert np.all(q >= s.spec.lower - 1e-9) and np.all(q <= s.spec.upper + 1e-9)
    d = np.abs(np.diff(q, axis=0))
    was_moving = np.concatenate([[False], np.any(d[:-1] > 0, axis=1)])
    assert was_moving.sum() > 20
    assert np.all(d[was_moving] <= s.spec.max_step + 1e-9)
