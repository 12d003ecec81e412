"""ALOHA: Interbotix command messages built for real (registered typestore), and state merging."""
import numpy as np
import pytest

from vla_ros.core.embodiment import RobotSpec
from vla_ros.robots import command_output, load_robot
from vla_ros.robots.aloha import StateMerger, arm_maps, follow_commands
from vla_ros.transport import types
from vla_ros.transport.inproc import Bus, InprocPort


@pytest.fixture
def aloha():
    return load_robot("aloha")


def test_interbotix_types_round_trip_on_the_wire():
    msg = types.new("interbotix_xs_msgs/msg/JointGroupCommand", name="arm", cmd=[0.1, -0.2, 0.3, 0, 0, 0])
    data = bytes(types.serialize(msg, "interbotix_xs_msgs/msg/JointGroupCommand"))
    # CDR: encapsulation, string length 4 "arm\0", sequence of 6 float32
    assert data[:4] == b"\x00\x01\x00\x00" and data[4:12] == b"\x04\x00\x00\x00arm\x00"
    back = types.deserialize(data, "interbotix_xs_msgs/msg/JointGroupCommand")
    assert back.name == "arm" and np.allclose(back.cmd, [0.1, -0.2, 0.3, 0, 0, 0])
    single = types.deserialize(types.serialize(types.new("interbotix_xs_msgs/msg/JointSingleCommand", name="gripper",
                                                         cmd=1.25), "interbotix_xs_msgs/msg/JointSingleCommand"),
                               "interbotix_xs_msgs/msg/JointSingleCommand")
    assert single.name == "gripper" and single.cmd == pytest.approx(1.25)


def _capture(aloha):
    bus = Bus()
    bridge, test = InprocPort("controller_bridge", bus=bus), InprocPort("test", bus=bus)
    seen = []
    for ns in ("follower_left", "follower_right"):
        test.subscribe(f"{ns}/commands/joint_group", "interbotix_xs_msgs/msg/JointGroupCommand",
                       lambda m, ns=ns: seen.append((ns, "group", m)))
        test.subscribe(f"{ns}/commands/joint_single", "interbotix_xs_msgs/msg/JointSingleCommand",
                       lambda m, ns=ns: seen.append((ns, "single", m)))
    return bridge, test, seen


def test_output_splits_the_14d_command_left_then_right(aloha):
    bridge, test, seen = _capture(aloha)
    out = command_output(bridge, aloha, "interbotix")
    assert out.topics == ("/follower_left/commands/joint_group", "/follower_left/commands/joint_single",
                          "/follower_right/commands/joint_group", "/follower_right/commands/joint_single")
    q = np.arange(14, dtype=float) / 10
    out.send(q, 0.02)
    test.spin_for(0.05)
    got = {(ns, kind): m for ns, kind, m in seen}
    assert got["follower_left", "group"].name == "arm"
    assert np.allclose(got["follower_left", "group"].cmd, q[:6])
    assert got["follower_left", "single"].name == "gripper" and got["follower_left", "single"].cmd == pytest.approx(0.6)
    assert np.allclose(got["follower_right", "group"].cmd, q[7:13])
    assert got["follower_right", "single"].cmd == pytest.approx(1.3)


def test_right_arm_first_order_still_reaches_the_right_arm(aloha):
    data = {**{k: v for k, v in aloha.extra.items()}, "name": "aloha", "control_rate": 50, "state_rate": 50,
            "policy_fps": 50, "arm_order": ["right", "left"],
            "joints": [{"name": j.name, "home": j.home, "limits": {"lower": j.lower, "upper": j.upper,
                        "velocity": j.max_velocity, "acceleration": j.max_acceleration}} for j in aloha.joints]}
    spec = RobotSpec.from_dict(data)
    assert spec.joint_names[0] == "right_waist"
    bridge, test, seen = _capture(spec)
    q = np.arange(14, dtype=float) / 10
    command_output(bridge, spec, "interbotix").send(q, 0.02)
    test.spin_for(0.05)
    got = {(ns, kind): m for ns, kind, m in seen}
    assert np.allclose(got["follower_right", "group"].cmd, q[:6])  # the first 7 values drive the right arm
    assert np.allclose(got["follower_left", "group"].cmd, q[7:13])


def test_merger_maps_interbotix_names_to_ours(aloha):
    merger = StateMerger(aloha)
    left, right = arm_maps(aloha)
    names = ["waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper",
             "left_finger", "right_finger"]
    assert merger.update(left, names, np.arange(9.0), [], 1.0) == []
    assert not merger.complete()
    assert merger.update(right, names[:5], np.arange(5.0), [], 1.0) == ["wrist_rotate", "gripper"]
    merger.update(right, names, 10 + np.arange(9.0), [], 1.0)
    assert merger.complete()
    assert np.allclose(merger.q, list(range(7)) + list(range(10, 17)))


def test_mock_follows_the_interbotix_topics_and_ignores_wrong_groups(aloha):
    bus = Bus()
    bridge, state = InprocPort("controller_bridge", bus=bus), InprocPort("state_publisher", bus=bus)
    got, warned = [], []
    follow_commands(state, aloha, lambda n, q: got.append((n, q)), lambda k, m: warned.append(m))
    group = bridge.publisher("follower_left/commands/joint_group", "interbotix_xs_msgs/msg/JointGroupCommand")
    group.publish(bridge.new("interbotix_xs_msgs/msg/JointGroupCommand", name="arm", cmd=np.ones(6)))
    group.publish(bridge.new("interbotix_xs_msgs/msg/JointGroupCommand", name="all", cmd=np.ones(6)))
    state.spin_for(0.05)
    assert got[0][0] == aloha.joint_names[:6] and np.allclose(got[0][1], 1.0)
    assert len(got) == 1 and "ignoring group 'all'" in warned[0]
