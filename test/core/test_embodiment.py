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


def test_step_cap_given_or_derived():
    so = load_robot("so100")
    assert np.allclose(so.max_step, 2.0 * so.max_velocity / so.control_rate)
    data = {"name": "x", "control_rate": 100, "state_rate": 50, "policy_fps": 30,
            "joints": [{"name": "j", "limits": {"lower": -1, "upper": 1, "velocity": 1, "acceleration": 1,
                                                 "max_step": 0.01}}]}
    assert RobotSpec.from_dict(data).max_step[0] == pytest.approx(0.01)
    data["joints"][0]["limits"]["max_step"] = -1
    with pytest.raises(SpecError, match="max_step must be >= 0"):
        RobotSpec.from_dict(data, "x.yaml")


def _bimanual(order):
    joints = [{"name": f"{side}_{j}", "limits": {"lower": -1, "upper": 1, "velocity": 1, "acceleration": 1}}
              for side in ("left", "right") for j in ("a", "b")]
    return {"name": "bi", "control_rate": 50, "state_rate": 50, "policy_fps": 50, "joints": joints,
            "arm_order": order}


def test_arm_order_puts_the_right_arm_first():
    spec = RobotSpec.from_dict(_bimanual(["right", "left"]))
    assert spec.joint_names == ["right_a", "right_b", "left_a", "left_b"]
    assert RobotSpec.from_dict(_bimanual(["left", "right"])).joint_names[0] == "left_a"
    with pytest.raises(SpecError, match="does not start with one of the arm_order sides"):
        RobotSpec.from_dict(_bimanual(["right", "top"]), "bi.yaml")


def test_aloha_gripper_normalization_spans_the_follower_range():
    aloha = load_robot("aloha")
    g = aloha.joint_names.index("left_gripper")
    closed, opened = np.array(aloha.home), np.array(aloha.home)
    closed[g], opened[g] = -0.6213, 1.4910
    assert aloha.to_policy(closed)[g] == pytest.approx(0.0, abs=1e-6)
    assert aloha.to_policy(opened)[g] == pytest.approx(1.0, abs=1e-6)
    assert aloha.from_policy(aloha.to_policy(opened))[g] == pytest.approx(1.4910)


def test_rby1_arms_match_the_sdk_models():
    rby1 = load_robot("rby1")
    assert rby1.joint_names[:14] == [f"right_arm_{k}" for k in range(7)] + [f"left_arm_{k}" for k in range(7)]
    assert rby1.upper[rby1.joint_names.index("right_arm_1")] == pytest.approx(np.radians(1.0))
    assert rby1.lower[rby1.joint_names.index("left_arm_1")] == pytest.approx(-np.radians(1.0))
