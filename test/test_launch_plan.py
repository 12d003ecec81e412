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
