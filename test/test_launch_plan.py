import pytest

from vla_ros.launch_plan import LAUNCH_ARGUMENTS, node_plan
from vla_ros.nodes.runner import parse_ros_args


def test_mock_plan_has_the_four_nodes():
    plan = node_plan("so100", "tiny", "mock")
    assert [n.executable for n in plan] == ["state_publisher", "camera_publisher", "camera_publisher",
                                            "policy_node", "controller_bridge"]
    policy = next(n for n in plan if n.executable == "policy_node")
    assert policy.parameters["camera_topics"] == ["camera/top/image_raw", "camera/wrist/image_raw"]
    assert policy.parameters["image_keys"] == ["observation.images.top", "observation.images.wrist"]
    bridge = next(n for n in plan if n.executable == "controller_bridge")
    assert bridge.parameters["start_enabled"] is True


def test_real_hardware_waits_for_enable_and_uses_devices():
    plan = node_plan("so100", "frozen", "real")
    assert "state_publisher" not in [n.executable for n in plan]  # ros2_control publishes joint_states
    assert next(n for n in plan if n.executable == "controller_bridge").parameters["start_enabled"] is False
    assert {n.parameters["source"] for n in plan if n.executable == "camera_publisher"} == {"device"}


@pytest.mark.parametrize("kw, needle", [
    ({"robot": "ur5"}, "valid robots: aloha, rby1, so100"),
    ({"model": "huge"}, "valid models: "),
    ({"hardware": "sim"}, "valid hardwares: mock, real"),
])
def test_unknown_names_list_valid_ones(kw, needle):
    with pytest.raises(ValueError, match=needle):
        node_plan(**kw)


def test_launch_arguments_cover_the_design():
    names = [a.name for a in LAUNCH_ARGUMENTS]
    assert names[:5] == ["robot", "model", "hardware", "checkpoint", "device"]
    model = next(a for a in LAUNCH_ARGUMENTS if a.name == "model")
    assert {"full", "frozen", "distilled", "tiny"} <= set(model.choices)


def test_ros_args_round_trip_through_the_node_command_line():
    for spec in node_plan("aloha", "tiny", "mock", namespace="left_cell"):
        opts = parse_ros_args(spec.ros_args(), "default")
        assert opts["name"] == spec.name and opts["namespace"] == "/left_cell"
        assert opts["parameters"] == spec.parameters


@pytest.mark.parametrize("robot, driver, state_driver, bridge_driver", [
    ("so100", "", None, "ros2_control"),            # ros2_control's broadcaster publishes joint_states
    ("so100", "lerobot", "lerobot", "lerobot"),     # state_publisher hosts LeRobot's SO follower
    ("aloha", "", "interbotix", "interbotix"),      # merges the two followers' joint states
    ("rby1", "", "sdk", "sdk"),                     # state_publisher hosts the rby1-sdk stream
    ("rby1", "ros2", "ros2", "ros2"),               # relays the rby1_ros2 driver's joint states
])
def test_real_hardware_plans(robot, driver, state_driver, bridge_driver):
    plan = node_plan(robot, "tiny", "real", driver=driver)
    state = [n for n in plan if n.executable == "state_publisher"]
    assert [n.parameters["driver"] for n in state] == ([state_driver] if state_driver else [])
    bridge = next(n for n in plan if n.executable == "controller_bridge")
    assert bridge.parameters["driver"] == bridge_driver and bridge.parameters["start_enabled"] is False
    assert bridge.parameters["max_chunk_step"] > 0  # the robot YAML's safety section
    assert "dry_run" not in bridge.parameters


def test_dry_run_and_driver_errors():
    bridge = next(n for n in node_plan("aloha", "tiny", "real", dry_run="true") if n.executable == "controller_bridge")
    assert bridge.parameters["dry_run"] is True
    with pytest.raises(ValueError, match="robot so100 has no driver 'sdk'; valid drivers: mock, ros2_control, lerobot"):
        node_plan("so100", "tiny", "real", driver="sdk")
    with pytest.raises(ValueError, match="needs hardware:=real"):
        node_plan("so100", "tiny", "mock", driver="lerobot")
    with pytest.raises(ValueError, match="valid dry_runs: false, true"):
        node_plan(dry_run="maybe")
