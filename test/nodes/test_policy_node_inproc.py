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
    say.publish(user.new("std_msgs/msg/String", data="put it back"))
    spin_ports(ports, 1.5)
    assert nodes[3].logic.instruction == "put it back"
    assert seen["status"][-1].instruction == "put it back"
    assert nodes[4].logic.counts["chunks_accepted"] >= 2


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
])
def test_bad_names_end_the_node_with_a_clear_error(module, param, needle):
    r = run_node(module, param)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and "Traceback" not in r.stderr
