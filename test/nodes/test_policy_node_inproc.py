"""The policy node with the tiny model, and the other nodes, over the inproc backend."""
import subprocess
import sys
import time

import numpy as np
import pytest

from vla_ros.nodes.bridge import ControllerBridge
from vla_ros.nodes.camera import CameraPublisher
from vla_ros.nodes.policy import PolicyNode
from vla_ros.nodes.state import StatePublisher
from vla_ros.transport.inproc import Bus, InprocPort, spin_ports


@pytest.fixture(scope="module")
def stack():
    bus = Bus()
    ports = [
        InprocPort("state_publisher", parameters={"robot": "so100"}, bus=bus),
        InprocPort("camera_top", parameters={"camera_name": "top"}, bus=bus),
        InprocPort("camera_wrist", parameters={"camera_name": "wrist"}, bus=bus),
        InprocPort("policy_node", parameters={"robot": "so100", "model": "tiny"}, bus=bus),
        InprocPort("controller_bridge", parameters={"robot": "so100", "start_enabled": True}, bus=bus),
    ]
    nodes = [StatePublisher(ports[0]), CameraPublisher(ports[1]), CameraPublisher(ports[2]),
             PolicyNode(ports[3]), ControllerBridge(ports[4])]
    user = InprocPort("user", bus=bus)
    seen = {"chunks": [], "status": []}
    user.subscribe("vla/action_chunk", "vla_ros/msg/ActionChunk", seen["chunks"].append)
    user.subscribe("vla/status", "vla_ros/msg/PolicyStatus", seen["status"].append)
    say = user.publisher("vla/instruction", "std_msgs/msg/String")
    all_ports = ports + [user]
    end = time.monotonic() + 600
    while nodes[3].runtime is None and time.monotonic() < end:
        spin_ports(all_ports, 0.5)
    assert nodes[3].runtime is not None, f"model not loaded: {nodes[3].logic.message}"
    yield nodes, all_ports, user, say, seen
    for n in nodes:
        n.close()
    for p in all_ports:
        p.shutdown()


def test_status_idle_and_no_chunks_before_an_instruction(stack):
    nodes, ports, user, say, seen = stack
    spin_ports(ports, 1.2)
    assert not seen["chunks"]
    st = seen["status"][-1]
    assert st.state_name == "IDLE" and list(st.waiting_for) == ["instruction"]
    assert st.model_variant == "tiny"


def test_instruction_produces_chunks_and_a_new_one_replaces_it(stack, so100):
    nodes, ports, user, say, seen = stack
    say.publish(user.new("std_msgs/msg/String", data="   "))  # ignored
    spin_ports(ports, 0.3)
    assert not seen["chunks"]
    say.publish(user.new("std_msgs/msg/String", data="pick up the red cube"))
    spin_ports(ports, 2.5)
    chunks = list(seen["chunks"])
    assert len(chunks) >= 2
    c = chunks[-1]
    assert list(c.joint_names) == so100.joint_names and (c.horizon, c.action_dim) == (50, 6)
    a = np.asarray(c.actions).reshape(50, 6)
    assert np.all(np.isfinite(a))
    assert seen["status"][-1].state_name == "RUNNING"
    first_id = c.instruction_id
    assert first_id == nodes[3].logic.instruction_id >= 1
    say.publish(user.new("std_msgs/msg/String", data="put it back"))
    spin_ports(ports, 1.5)
    assert nodes[3].logic.instruction == "put it back"
    st = seen["status"][-1]
    assert st.instruction == "put it back" and st.instruction_id == first_id + 1
    assert seen["chunks"][-1].instruction_id == first_id + 1
    assert nodes[4].logic.counts["chunks_accepted"] >= 2
    # every inference is accounted for; the tiny model is fast, so chunks overlap and are merged
    assert st.chunks_computed == st.chunks_published + st.chunks_dropped
    assert st.chunks_merged >= 1 and st.chunks_published <= len(seen["chunks"])  # status: up to 1 s old


def spin_until(ports, pred, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end and not pred():
        spin_ports(ports, 0.05)
    return pred()


def test_inference_error_holds_the_robot_and_the_next_instruction_recovers(stack, caplog):
    nodes, ports, user, say, seen = stack
    policy = nodes[3]
    runtime = policy.runtime
    real_predict = runtime.predict_chunk
    calls = []

    def fails_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return real_predict(*args, **kwargs)

    commands = []
    user.subscribe("arm_controller/joint_trajectory", "trajectory_msgs/msg/JointTrajectory",
                   lambda m: commands.append((time.monotonic(), np.asarray(m.points[0].positions))))
    runtime.predict_chunk = fails_once  # the instance attribute shadows the method
    try:
        say.publish(user.new("std_msgs/msg/String", data="stack the cubes"))
        assert spin_until(ports, lambda: policy.logic.state == "ERROR", 10.0), policy.logic.message
        n_chunks = len(seen["chunks"])
        spin_ports(ports, 2.5)  # longer than a chunk (1.67 s): the bridge plays out what it has
        assert len(seen["chunks"]) == n_chunks, "nothing is published after a failed inference"
        st = seen["status"][-1]
        assert st.state_name == "ERROR"
        assert "inference failed: RuntimeError: CUDA error: an illegal memory access" in st.message
        assert "CUDA error: an illegal memory access" in caplog.text  # logged with the cause
        recent = [q for t, q in commands if t > time.monotonic() - 0.5]
        assert len(recent) > 5 and all(np.array_equal(q, recent[0]) for q in recent), "the bridge holds"
        assert st.chunks_computed == st.chunks_published + st.chunks_dropped

        failed_id = policy.logic.instruction_id
        say.publish(user.new("std_msgs/msg/String", data="stack the cubes"))  # the same one, again
        assert spin_until(ports, lambda: len(seen["chunks"]) >= n_chunks + 2, 10.0)
        assert seen["chunks"][-1].instruction_id == failed_id + 1
        spin_ports(ports, 1.2)
        st = seen["status"][-1]
        assert st.state_name == "RUNNING" and st.message == "" and st.instruction_id == failed_id + 1
        moving = [q for t, q in commands if t > time.monotonic() - 0.5]
        assert not all(np.array_equal(q, moving[0]) for q in moving), "the bridge moves again"
    finally:
        del runtime.predict_chunk


def run_node(module, *params, timeout=120):
    args = [sys.executable, "-m", module, "--ros-args", *sum((["-p", p] for p in params), [])]
    env = {"VLA_ROS_TRANSPORT": "inproc", "PATH": "/usr/bin:/bin", "VLA_ROS_CACHE": "/nonexistent"}
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.parametrize("module, param, needle", [
    ("vla_ros.nodes.bridge", "robot:=ur5", "unknown robot 'ur5'; valid robots: aloha, rby1, so100"),
    ("vla_ros.nodes.policy", "model:=huge", "unknown model 'huge'; valid names: distilled, frozen, full, l1, tiny"),
    ("vla_ros.nodes.policy", "model:=full",
     "checkpoint 'Sythen/my_smolvla_training_fm' not found locally and the hub is unreachable; pass checkpoint:=<dir>"),
    ("vla_ros.nodes.camera", "source:=webcam", "'source' = 'webcam' must be one of synthetic, device, video, folder"),
    ("vla_ros.nodes.policy", "replan_mode:=soon", "'replan_mode' = 'soon' must be one of latency, threshold"),
])
def test_bad_names_end_the_node_with_a_clear_error(module, param, needle):
    r = run_node(module, param)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and "Traceback" not in r.stderr


def test_checkpoint_for_another_robot_ends_the_node_with_a_clear_error(tmp_path, so100):
    """A real tiny checkpoint built for a 5-joint arm, given to the policy node of the 6-joint SO-100."""
    from vla_ros.policy.robot_dims import RobotDims
    from vla_ros.policy.tiny import TinyPolicyConfig, ensure_tiny_checkpoint
    from vla_ros.policy.variants import load_variant

    five = RobotDims.from_limits(lower=[-1.0] * 5, upper=[1.0] * 5,
                                 image_keys=tuple(c.policy_key for c in so100.cameras))
    directory = ensure_tiny_checkpoint(five, TinyPolicyConfig.from_options(load_variant("tiny").build),
                                       root=tmp_path / "models")
    r = run_node("vla_ros.nodes.policy", "robot:=so100", f"checkpoint:={directory}")
    assert r.returncode == 2, r.stderr
    assert f"({directory / 'config.json'}) does not fit the robot" in r.stderr
    assert "action dimension: policy 5, robot 6" in r.stderr and "Traceback" not in r.stderr
