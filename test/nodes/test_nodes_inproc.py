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
    with pytest.raises(ParameterError, match="'aggregation' = 'median' must be one of latest, crossfade"):
        ControllerBridge(InprocPort("controller_bridge", parameters={"aggregation": "median"}, bus=Bus()))
