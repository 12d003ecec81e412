"""The state publisher (mock arm) and the controller bridge as nodes over the inproc backend."""
import numpy as np
import pytest

from vla_ros.nodes.bridge import ControllerBridge
from vla_ros.nodes.state import StatePublisher
from vla_ros.transport.inproc import Bus, InprocPort, spin_ports
from vla_ros.transport.params import ParameterError
from vla_ros.transport.port import LATCHED_QOS, RELIABLE_QOS


@pytest.fixture
def rig(so100):
    bus = Bus()
    ports = {
        "state": InprocPort("state_publisher", parameters={"robot": "so100"}, bus=bus),
        "bridge": InprocPort("controller_bridge", parameters={"robot": "so100", "start_enabled": True}, bus=bus),
        "test": InprocPort("test", bus=bus),
    }
    state = StatePublisher(ports["state"])
    bridge = ControllerBridge(ports["bridge"])
    seen = {"joint_states": [], "commands": []}
    t = ports["test"]
    t.subscribe("joint_states", "sensor_msgs/msg/JointState", lambda m: seen["joint_states"].append(m))
    t.subscribe("arm_controller/joint_trajectory", "trajectory_msgs/msg/JointTrajectory",
                lambda m: seen["commands"].append(m))
    chunk_pub = t.publisher("vla/action_chunk", "vla_ros/msg/ActionChunk")
    estop_pub = t.publisher("vla/estop", "std_msgs/msg/Bool", LATCHED_QOS)
    yield ports, bridge, state, seen, chunk_pub, estop_pub
    for p in ports.values():
        p.shutdown()


def send_chunk(port, pub, spec, target, stamp=None, names=None, steps=40):
    actions = np.tile(np.asarray(target, dtype=np.float32), (steps, 1))
    pub.publish(port.new(
        "vla_ros/msg/ActionChunk", header=port.header(stamp or port.now()), chunk_id=1,
        joint_names=names or spec.joint_names, horizon=steps, action_dim=spec.dof,
        step_period=1 / 30, actions=actions.reshape(-1), model_variant="test"))


def test_chunk_moves_the_mock_arm_inside_limits(rig, so100):
    ports, bridge, state, seen, chunk_pub, _ = rig
    spin_ports(list(ports.values()), 0.3)
    assert seen["joint_states"], "state_publisher publishes joint_states"
    target = np.clip(so100.home + 0.4, so100.lower, so100.upper)
    send_chunk(ports["test"], chunk_pub, so100, target)
    spin_ports(list(ports.values()), 1.0)
    q = np.array([np.asarray(m.position) for m in seen["joint_states"]])
    assert np.max(np.abs(q[-1] - so100.home)) > 0.2  # the arm moved toward the target
    assert np.all(q >= so100.lower) and np.all(q <= so100.upper)
    cmd = seen["commands"][-1]
    assert list(cmd.joint_names) == so100.joint_names and len(cmd.points) == 1


def test_estop_over_the_wire_holds(rig, so100):
    ports, bridge, state, seen, chunk_pub, estop_pub = rig
    spin_ports(list(ports.values()), 0.2)
    send_chunk(ports["test"], chunk_pub, so100, so100.upper)
    spin_ports(list(ports.values()), 0.2)
    estop_pub.publish(ports["test"].new("std_msgs/msg/Bool", data=True))
    spin_ports(list(ports.values()), 0.1)
    n = len(seen["commands"])
    send_chunk(ports["test"], chunk_pub, so100, so100.lower)
    spin_ports(list(ports.values()), 0.3)
    held = [np.asarray(m.points[0].positions) for m in seen["commands"][n:]]
    assert len(held) > 5 and all(np.allclose(h, held[0]) for h in held)
    assert bridge.logic.reason == "e-stop"


def test_policy_publisher_gone_makes_bridge_hold(so100):
    bus = Bus()
    sp = InprocPort("state_publisher", parameters={"robot": "so100"}, bus=bus)
    bp = InprocPort("controller_bridge", parameters={"robot": "so100", "start_enabled": True}, bus=bus)
    policy = InprocPort("policy_node", bus=bus)
    StatePublisher(sp)
    bridge = ControllerBridge(bp)
    pub = policy.publisher("vla/action_chunk", "vla_ros/msg/ActionChunk", RELIABLE_QOS)
    spin_ports([sp, bp], 0.2)
    send_chunk(policy, pub, so100, so100.home + 0.3, steps=50)
    spin_ports([sp, bp], 0.2)
    assert bridge.logic.reason == "running"
    policy.shutdown()
    spin_ports([sp, bp], 0.05)
    assert bridge.logic.reason == "policy lost"
    restarted = InprocPort("policy_node", bus=bus)  # a new policy process comes up
    restarted.publisher("vla/action_chunk", "vla_ros/msg/ActionChunk", RELIABLE_QOS)
    spin_ports([sp, bp], 0.05)
    assert bridge.logic.policy_alive
    sp.shutdown(), bp.shutdown(), restarted.shutdown()


def test_bad_parameter_fails_at_start():
    from vla_ros.core.player import AGGREGATIONS

    with pytest.raises(ParameterError, match=f"'aggregation' = 'median' must be one of {', '.join(AGGREGATIONS)}"):
        ControllerBridge(InprocPort("controller_bridge", parameters={"aggregation": "median"}, bus=Bus()))


def _spin_rig(robot, bridge_params, topics):
    bus = Bus()
    ports = {
        "state": InprocPort("state_publisher", parameters={"robot": robot}, bus=bus),
        "bridge": InprocPort("controller_bridge", parameters={"robot": robot, "start_enabled": True,
                                                             **bridge_params}, bus=bus),
        "test": InprocPort("test", bus=bus),
    }
    nodes = [StatePublisher(ports["state"]), ControllerBridge(ports["bridge"])]
    seen = {t: [] for t in topics}
    for topic, msg_type in topics.items():
        ports["test"].subscribe(topic, msg_type, seen[topic].append)
    pub = ports["test"].publisher("vla/action_chunk", "vla_ros/msg/ActionChunk")
    return ports, nodes, seen, pub


@pytest.mark.parametrize("robot, topic, msg_type", [
    ("aloha", "follower_right/commands/joint_group", "interbotix_xs_msgs/msg/JointGroupCommand"),
    ("rby1", "rby1_arm_controller/joint_trajectory", "trajectory_msgs/msg/JointTrajectory"),
])
def test_mock_robots_move_through_their_real_interface(robot, topic, msg_type):
    from vla_ros.robots import load_robot

    spec = load_robot(robot)
    ports, nodes, seen, pub = _spin_rig(robot, {}, {topic: msg_type, "joint_states": "sensor_msgs/msg/JointState"})
    spin_ports(list(ports.values()), 0.3)
    target = np.clip(spec.home + 0.3, spec.lower, spec.upper)
    send_chunk(ports["test"], pub, spec, target)
    spin_ports(list(ports.values()), 1.2)
    assert seen[topic], f"the bridge commands {topic}"
    q = np.array([np.asarray(m.position) for m in seen["joint_states"]])
    assert list(seen["joint_states"][-1].name) == spec.joint_names
    assert np.max(np.abs(q[-1] - spec.home)) > 0.1
    assert np.all(q >= spec.lower - 1e-9) and np.all(q <= spec.upper + 1e-9)
    for p in ports.values():
        p.shutdown()


def test_dry_run_publishes_the_preview_only_and_diagnostics_report_it(so100):
    topics = {"arm_controller/joint_trajectory": "trajectory_msgs/msg/JointTrajectory",
              "vla/command_preview": "trajectory_msgs/msg/JointTrajectory",
              "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray"}
    ports, nodes, seen, pub = _spin_rig("so100", {"dry_run": True, "diagnostics_period": 0.2}, topics)
    spin_ports(list(ports.values()), 0.2)
    send_chunk(ports["test"], pub, so100, so100.home + 0.2)
    spin_ports(list(ports.values()), 0.5)
    assert not seen["arm_controller/joint_trajectory"], "dry run: nothing reaches the robot"
    preview = seen["vla/command_preview"]
    assert preview and list(preview[-1].joint_names) == so100.joint_names
    status = seen["/diagnostics"][-1].status[0]
    values = {kv.key: kv.value for kv in status.values}
    assert values["mode"] == "dry_run" and values["chunks_accepted"] == "1" and values["dry_run"] == "true"
    assert status.hardware_id == "so100"
    for p in ports.values():
        p.shutdown()


def test_diagnostics_count_rejections_and_name_the_hold(rig, so100):
    ports, bridge, state, seen, chunk_pub, estop_pub = rig
    spin_ports(list(ports.values()), 0.2)
    send_chunk(ports["test"], chunk_pub, so100, so100.home, names=[*so100.joint_names[:-1], "jaw"])
    bad = np.tile(np.asarray(so100.home, dtype=np.float32), (40, 1))
    bad[5, 0] = np.nan
    ports["test"].publisher("vla/action_chunk", "vla_ros/msg/ActionChunk")  # same topic, second writer
    chunk_pub.publish(ports["test"].new("vla_ros/msg/ActionChunk", header=ports["test"].header(ports["test"].now()),
                                        chunk_id=2, joint_names=so100.joint_names, horizon=40, action_dim=6,
                                        step_period=1 / 30, actions=bad.reshape(-1)))
    spin_ports(list(ports.values()), 0.2)
    diag = bridge.diagnostics().status[0]
    values = {kv.key: kv.value for kv in diag.values}
    assert values["chunks_rejected_names"] == "1" and values["chunks_rejected_nonfinite"] == "1"
    assert values["chunks_rejected"] == "2" and values["mode"] == "holding"
    assert "non-finite" in values["hold_reason"] and diag.level == 2


def test_state_publisher_merges_the_interbotix_followers():
    from vla_ros.robots import load_robot

    aloha = load_robot("aloha")
    bus = Bus()
    sp = InprocPort("state_publisher", parameters={"robot": "aloha", "driver": "interbotix"}, bus=bus)
    xs = InprocPort("xs_sdk", bus=bus)
    StatePublisher(sp)
    merged = []
    xs.subscribe("joint_states", "sensor_msgs/msg/JointState", merged.append)
    names = ["waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper",
             "left_finger", "right_finger"]
    for ns, base in (("follower_left", 0.0), ("follower_right", 1.0)):
        xs.publisher(f"{ns}/joint_states", "sensor_msgs/msg/JointState").publish(xs.new(
            "sensor_msgs/msg/JointState", name=names, position=base + np.arange(9) / 100))
    spin_ports([sp, xs], 0.1)
    assert merged and list(merged[-1].name) == aloha.joint_names
    assert np.allclose(merged[-1].position, np.concatenate([np.arange(7) / 100, 1.0 + np.arange(7) / 100]))
    sp.shutdown(), xs.shutdown()


def test_state_publisher_relays_rby1_ros2_with_gripper_units():
    from vla_ros.robots import load_robot

    rby1 = load_robot("rby1")
    bus = Bus()
    sp = InprocPort("state_publisher", parameters={"robot": "rby1", "driver": "ros2"}, bus=bus)
    drv = InprocPort("rby1_driver", bus=bus)
    StatePublisher(sp)
    out = []
    drv.subscribe("joint_states", "sensor_msgs/msg/JointState", out.append)
    names = ["torso_0"] + rby1.joint_names[:14] + ["gripper_finger_r2", "gripper_finger_l2", "head_0"]
    drv.publisher("rby1/joint_states", "sensor_msgs/msg/JointState").publish(drv.new(
        "sensor_msgs/msg/JointState", name=names, position=[9.0] + [0.1] * 14 + [0.05, 0.025, 9.0]))
    spin_ports([sp, drv], 0.1)
    assert list(out[-1].name) == rby1.joint_names
    assert np.allclose(out[-1].position, [0.1] * 14 + [1.0, 0.5])  # finger metres -> aperture
    sp.shutdown(), drv.shutdown()


def test_lerobot_driver_without_calibration_stops_with_the_fix(tmp_path):
    from vla_ros.robots.base import DriverError

    port = InprocPort("state_publisher", parameters={"robot": "so100", "driver": "lerobot",
                                                     "serial_port": "/dev/vla_ros_none",
                                                     "calibration_dir": str(tmp_path)}, bus=Bus())
    with pytest.raises(DriverError, match="lerobot-calibrate --robot.type=so100_follower --robot.port=/dev/vla_ros_none"):
        StatePublisher(port)
    with pytest.raises(ParameterError, match="'driver' = 'sdk'"):
        StatePublisher(InprocPort("state_publisher", parameters={"robot": "so100", "driver": "sdk"}, bus=Bus()))
