import numpy as np
import pytest

from vla_ros.core.embodiment import RobotSpec, SpecError, reorder
from vla_ros.robots import available_robots, load_robot


def test_shipped_robots_load():
    assert {"so100", "aloha", "rby1"} <= set(available_robots())
    so = load_robot("so100")
    assert so.joint_names == ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
    aloha = load_robot("aloha")
    assert aloha.dof == 14
    assert aloha.joint_names[:7] == ["left_waist", "left_shoulder", "left_elbow", "left_forearm_roll",
                                     "left_wrist_angle", "left_wrist_rotate", "left_gripper"]
    assert aloha.joint_names[7].startswith("right_")
    assert load_robot("rby1").control_rate == 100.0
    for name in available_robots():
        spec = load_robot(name)
        assert np.all(spec.lower < spec.upper) and spec.cameras


def test_unknown_robot_lists_valid_names():
    with pytest.raises(SpecError, match="valid robots: aloha, rby1, so100"):
        load_robot("ur5")


def test_policy_units_round_trip_so100():
    so = load_robot("so100")
    q = np.array([0.5, -1.0, 1.2, 0.3, -0.2, so.joints[5].lower])
    model = so.to_policy(q)
    assert model[0] == pytest.approx(np.degrees(0.5))
    assert model[5] == pytest.approx(0.0)  # gripper closed -> 0 of 0..100
    assert so.to_policy(np.full(6, so.joints[5].upper))[5] == pytest.approx(100.0)
    assert np.allclose(so.from_policy(model), q)


def test_bad_spec_names_field():
    data = {"name": "x", "control_rate": 50, "state_rate": 50, "policy_fps": 30,
            "joints": [{"name": "j", "limits": {"lower": 1, "upper": 0, "velocity": 1, "acceleration": 1}}]}
    with pytest.raises(SpecError, match="lower 1.0 must be < upper"):
        RobotSpec.from_dict(data, "x.yaml")
    del data["joints"][0]["limits"]["velocity"]
    with pytest.raises(SpecError, match="missing 'velocity'"):
        RobotSpec.from_dict(data, "x.yaml")


def test_reorder_by_name():
    q, missing = reorder([3.0, 1.0, 9.0], ["c", "a", "extra"], ["a", "b", "c"])
    assert missing == ["b"] and q[0] == 1.0 and q[2] == 3.0 and np.isnan(q[1])
