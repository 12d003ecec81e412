"""End to end: the four nodes as separate processes over Cyclone DDS on loopback.

What the nodes publish is read here as raw bytes off DDS and decoded with a typestore built in
this file from the .msg files (not with the nodes' own decoding).
"""
from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from _wire import RawTap, dds_domain, independent_typestore

from vla_ros.launch_plan import node_plan
from vla_ros.launcher import Launcher
from vla_ros.robots import load_robot

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def stack():
    domain = random.randint(100, 199)  # a DDS domain of this module's own
    with dds_domain(domain) as env:
        yield from _stack(env, domain)


def _stack(env: dict[str, str], domain: int):
    env["VLA_ROS_CACHE"] = os.environ["VLA_ROS_CACHE"]
    lines: list[str] = []
    launcher = Launcher(node_plan("so100", "tiny", "mock"), env, output=None,
                        on_line=lambda n, l: lines.append(f"[{n}] {l}")).start()
    tap = RawTap({
        "vla/action_chunk": "vla_ros/msg/ActionChunk",
        "vla/status": "vla_ros/msg/PolicyStatus",
        "joint_states": "sensor_msgs/msg/JointState",
        "arm_controller/joint_trajectory": "trajectory_msgs/msg/JointTrajectory",
    }, domain)
    try:
        yield launcher, tap, lines
    finally:
        tap.close()
        launcher.stop()


def wait_for(pred, timeout: float, launcher: Launcher, lines: list[str]) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        dead = {n: c for n, c in launcher.poll().items() if c is not None}
        assert not dead, f"node(s) exited {dead}:\n" + "\n".join(lines[-40:])
        time.sleep(0.1)
    raise AssertionError("timed out; node output:\n" + "\n".join(lines[-40:]))


def say(text: str) -> None:
    from vla_ros.transport import make_port

    port = make_port("e2e_user", "dds")
    pub = port.publisher("vla/instruction", "std_msgs/msg/String")
    end = time.monotonic() + 20
    while pub.subscription_count == 0 and time.monotonic() < end:
        port.spin_once(0.05)
    time.sleep(0.3)
    pub.publish(port.new("std_msgs/msg/String", data=text))
    port.spin_for(0.5)
    port.shutdown()


def test_instruction_to_chunks_to_motion(stack):
    launcher, tap, lines = stack
    store = independent_typestore()
    spec = load_robot("so100")
    decode = store.deserialize_cdr

    def status_names():
        return [decode(b, "vla_ros/msg/PolicyStatus").state_name for _, b in tap.samples["vla/status"]]

    # the model is built offline on first use; the node reports IDLE once it is loaded
    wait_for(lambda: "IDLE" in status_names(), 600, launcher, lines)
    assert not tap.samples["vla/action_chunk"], "no chunk before an instruction"
    states_before = len(tap.samples["joint_states"])
    say("pick up the red cube")
    wait_for(lambda: len(tap.samples["vla/action_chunk"]) >= 4, 120, launcher, lines)
    time.sleep(2.0)

    chunks = [(t, decode(b, "vla_ros/msg/ActionChunk")) for t, b in tap.samples["vla/action_chunk"]]
    stamps = []
    for arrived, c in chunks:
        assert list(c.joint_names) == spec.joint_names
        assert (c.horizon, c.action_dim) == (50, 6)
        assert c.actions.dtype == np.float32 and c.actions.shape == (300,)
        assert np.all(np.isfinite(c.actions))
        assert c.step_period == pytest.approx(1 / 30)
        assert c.model_variant == "tiny"
        stamp = c.header.stamp.sec + c.header.stamp.nanosec * 1e-9
        assert 0.0 < arrived - stamp < 5.0, "stamped with the observation time, before it arrived"
        stamps.append(stamp)
    assert np.all(np.diff(stamps) > 0) and [c.chunk_id for _, c in chunks] == sorted(c.chunk_id for _, c in chunks)

    states = [decode(b, "sensor_msgs/msg/JointState") for _, b in tap.samples["joint_states"][states_before:]]
    q = np.array([s.position for s in states])
    assert all(list(s.name) == spec.joint_names for s in states)
    assert np.max(np.abs(q - q[0])) > 0.01, "the mock arm moved"
    assert np.all(q >= spec.lower - 1e-9) and np.all(q <= spec.upper + 1e-9), "and stayed inside its limits"

    status = decode(tap.samples["vla/status"][-1][1], "vla_ros/msg/PolicyStatus")
    assert status.state_name == "RUNNING" and status.instruction == "pick up the red cube"
    assert status.chunks_published >= 4 and status.model_variant == "tiny"


def test_bridge_holds_when_the_policy_process_dies(stack):
    launcher, tap, lines = stack
    store = independent_typestore()
    decode = store.deserialize_cdr
    topic = "arm_controller/joint_trajectory"
    wait_for(lambda: len(tap.samples["vla/action_chunk"]) >= 1, 60, launcher, lines)
    n = len(tap.samples[topic])
    launcher.kill("policy_node", signal.SIGKILL)
    killed = time.time()
    time.sleep(1.5)
    after = [(t, np.asarray(decode(b, "trajectory_msgs/msg/JointTrajectory").points[0].positions))
             for t, b in tap.samples[topic][n:]]
    assert len(after) > 20, "the bridge keeps commanding (holding) after the policy died"
    final = after[-1][1]
    moving = [t for t, p in after if not np.allclose(p, final)]
    last_move = max(moving) - killed if moving else 0.0
    # the chunk being played had ~1 s left: the bridge held because it saw the policy go, not
    # because the chunk ran out
    assert last_move < 0.5, f"still moving {last_move:.3f} s after the kill"
    assert any("policy" in l and "gone" in l for l in lines if l.startswith("[controller_bridge]")), \
        "\n".join(lines[-20:])
