"""RB-Y1: rby1-sdk command builders built for real, the driver up to connect, rby1_ros2 mapping."""
import numpy as np
import pytest

from vla_ros.robots import command_output, load_robot
from vla_ros.robots.base import DriverError
from vla_ros.robots.rby1 import Rby1Sdk, ros2_names, ros2_targets
from vla_ros.transport.inproc import Bus, InprocPort

rby = pytest.importorskip("rby1_sdk", reason="rby1-sdk not installed (pip install rby1-sdk)")


@pytest.fixture
def spec():
    return load_robot("rby1")


@pytest.mark.parametrize("model", ["a", "m", "ub"])
def test_sdk_layout_matches_the_yaml(spec, model):
    drv = Rby1Sdk.from_spec(spec, {"address": "127.0.0.1:9", "model": model, "gripper": "none"})
    names = list(type(drv.robot).model().robot_joint_names)
    assert [names[i] for i in drv.state_right] == spec.joint_names[:7]
    assert [names[i] for i in drv.state_left] == spec.joint_names[7:14]


def test_command_builder_is_the_sdks(spec):
    drv = Rby1Sdk.from_spec(spec, {"address": "127.0.0.1:9", "gripper": "none"})
    cmd = drv.command(spec.home)
    assert isinstance(cmd, rby.RobotCommandBuilder)
    assert drv.cfg["minimum_time"] == pytest.approx(0.03) and drv.cfg["control_hold_time"] == pytest.approx(0.2)


def test_unreachable_robot_is_a_clear_error(spec):
    # loopback port 9 (discard) has no gRPC server: the SDK's own connect() fails
    drv = Rby1Sdk.from_spec(spec, {"address": "127.0.0.1:9", "gripper": "none", "connect_retries": 1,
                                   "connect_timeout_ms": 200})
    with pytest.raises(DriverError, match="cannot connect to the RB-Y1 at 127.0.0.1:9"):
        drv.connect()


def test_gripper_bus_missing_is_a_clear_error(spec):
    drv = Rby1Sdk.from_spec(spec, {"address": "127.0.0.1:9"})
    drv.grippers.device = "/dev/vla_ros_no_gripper"
    with pytest.raises(DriverError, match="sdk.gripper: none"):
        drv.grippers.connect()


def test_gripper_aperture_maps_to_the_homed_encoder_range(spec):
    g = Rby1Sdk.from_spec(spec, {"address": "127.0.0.1:9"}).grippers
    g.min_q, g.max_q = np.array([10.0, 20.0]), np.array([110.0, 70.0])
    enc = g.to_encoder(np.array([1.0, 0.25]))
    assert np.allclose(enc, [10.0, 57.5])  # open at the low end unless gripper_open_at_max
    assert np.allclose(g.to_aperture(enc), [1.0, 0.25])


def test_ros2_driver_sends_one_trajectory_per_controller(spec):
    bus = Bus()
    bridge, test = InprocPort("controller_bridge", bus=bus), InprocPort("test", bus=bus)
    seen = {}
    for c in ("right_arm_controller", "left_arm_controller", "gripper_controller"):
        test.subscribe(f"{c}/joint_trajectory", "trajectory_msgs/msg/JointTrajectory",
                       lambda m, c=c: seen.setdefault(c, m))
    q = np.array(spec.home, dtype=float)
    command_output(bridge, spec, "ros2").send(q, 0.01)
    test.spin_for(0.05)
    assert list(seen["right_arm_controller"].joint_names) == spec.joint_names[:7]
    assert np.allclose(seen["left_arm_controller"].points[0].positions, q[7:14])
    grip = seen["gripper_controller"]
    assert list(grip.joint_names) == ["gripper_finger_r2", "gripper_finger_l2"]
    assert np.allclose(grip.points[0].positions, 0.05 * q[14:])  # aperture 1 -> 5 cm of finger travel
    names, scale, _ = ros2_names(spec)
    assert names[14] == "gripper_finger_r2" and scale[14] == pytest.approx(0.05)
    assert sorted(i for t in ros2_targets(spec) for i in t.indices) == list(range(16))
