"""SO-100: LeRobot unit conversion both ways, and LeRobot's own SO follower class up to the bus."""
import json
import math

import numpy as np
import pytest

from vla_ros.robots import load_robot
from vla_ros.robots.base import DriverError
from vla_ros.robots.so100 import LeRobotSOFollower, feature, lerobot_settings, lerobot_to_si, si_to_lerobot


@pytest.fixture
def spec():
    return load_robot("so100")


def test_lerobot_values_to_radians_and_back(spec):
    values = {"shoulder_pan.pos": 90.0, "shoulder_lift.pos": -45.0, "elbow_flex.pos": 30.0,
              "wrist_flex.pos": 0.0, "wrist_roll.pos": -180.0, "gripper.pos": 50.0}
    q = lerobot_to_si(spec, values)
    assert q[0] == pytest.approx(math.pi / 2) and q[1] == pytest.approx(-math.pi / 4)
    assert q[4] == pytest.approx(-math.pi)
    g = spec.joints[5]
    assert q[5] == pytest.approx((g.lower + g.upper) / 2)
    back = si_to_lerobot(spec, q)
    assert list(back) == [f"{n}.pos" for n in spec.joint_names]
    assert all(back[k] == pytest.approx(v) for k, v in values.items())


def test_gripper_ends_and_dataset_units_agree(spec):
    g = spec.joints[5]
    q = np.array(spec.home, dtype=float)
    q[5] = g.lower
    assert si_to_lerobot(spec, q)["gripper.pos"] == pytest.approx(0.0)
    q[5] = g.upper
    assert si_to_lerobot(spec, q)["gripper.pos"] == pytest.approx(100.0)
    # the policy's units (LeRobot datasets record the follower's values) are the same numbers
    rng = np.random.default_rng(0)
    for _ in range(5):
        q = rng.uniform(spec.lower, spec.upper)
        assert np.allclose(list(si_to_lerobot(spec, q).values()), spec.to_policy(q))


def test_missing_feature_is_named(spec):
    with pytest.raises(KeyError, match="gripper.pos"):
        lerobot_to_si(spec, {feature(n): 0.0 for n in spec.joint_names[:-1]})
    with pytest.raises(ValueError, match="expected 6 positions"):
        si_to_lerobot(spec, np.zeros(5))


def test_lerobot_follower_is_built_from_the_yaml_and_parameters(spec, tmp_path):
    drv = LeRobotSOFollower.from_spec(spec, {"port": "/dev/vla_ros_no_such_port", "id": "left_arm",
                                             "calibration_dir": str(tmp_path)})
    from lerobot.robots.so_follower import SOFollower

    assert isinstance(drv.robot, SOFollower)
    assert drv.config.port == "/dev/vla_ros_no_such_port" and drv.config.id == "left_arm" and drv.config.use_degrees
    assert set(drv.robot.action_features) == {f"{n}.pos" for n in spec.joint_names}
    assert drv.calibration_file == tmp_path / "left_arm.json"
    assert lerobot_settings(spec)["port"] == "/dev/ttyACM0"


def test_connect_without_calibration_says_how_to_calibrate(spec, tmp_path):
    drv = LeRobotSOFollower.from_spec(spec, {"port": "/dev/vla_ros_no_such_port", "id": "arm",
                                             "calibration_dir": str(tmp_path)})
    with pytest.raises(DriverError, match="lerobot-calibrate --robot.type=so100_follower"):
        drv.connect()


def test_connect_to_a_missing_port_is_a_clear_error(spec, tmp_path):
    calib = {n: {"id": i + 1, "drive_mode": 0, "homing_offset": 0, "range_min": 1000, "range_max": 3000}
             for i, n in enumerate(spec.joint_names)}
    (tmp_path / "arm.json").write_text(json.dumps(calib))
    drv = LeRobotSOFollower.from_spec(spec, {"port": "/dev/vla_ros_no_such_port", "id": "arm",
                                             "calibration_dir": str(tmp_path)})
    assert drv.robot.calibration  # LeRobot read the calibration file
    with pytest.raises(DriverError, match="serial port /dev/vla_ros_no_such_port does not exist"):
        drv.connect()
    drv.port = str(tmp_path / "arm.json")  # exists, but is no serial device: the Feetech bus refuses it
    with pytest.raises(DriverError, match="cannot connect to the SO follower"):
        drv.connect()
