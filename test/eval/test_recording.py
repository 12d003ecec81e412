"""Reading recordings: storages, image encodings, joint order, duplicates, missing topics."""
from __future__ import annotations

import numpy as np
import pytest

from vla_ros.eval.bagio import BagError
from vla_ros.eval.recording import from_bag
from vla_ros.eval.synthetic import target_at, write_session


def _first_images(rec, n=5):
    plans, _ = rec.observation_times(every=3, limit=n)
    return [(p.t, imgs) for p, imgs in rec.observations(plans)]


def test_clean_bag_streams(bags, robot):
    rec = from_bag(bags["clean"], robot)
    assert rec.reference_name == "commands"
    assert len(rec.state) == 151 and len(rec.commands) == 151 and len(rec.chunks) == 4
    assert [e.instruction for e in rec.episodes] == ["pick up the red cube"]
    assert {k: len(v) for k, v in rec.frame_times.items()} == {"top": 91, "wrist": 91}
    # commands are the scripted targets, reached one control period after they are sent
    rel = rec.commands.t - rec.commands.t[0] + 1.0 / robot.control_rate
    np.testing.assert_allclose(rec.commands.q[10], target_at(robot, rel[10]), atol=1e-6)  # stamps: float seconds


@pytest.mark.parametrize("variant", ["sqlite3", "bgr8", "png", "messy"])
def test_variants_read_the_same(bags, robot, variant):
    """sqlite3 storage, bgr8 images, (lossless) CompressedImage, and joint states in another order
    with an extra joint, duplicated and out of order: the same streams and the same RGB images."""
    ref = from_bag(bags["clean"], robot)
    rec = from_bag(bags[variant], robot)
    np.testing.assert_array_equal(rec.state.t, ref.state.t)
    np.testing.assert_array_equal(rec.state.q, ref.state.q)
    np.testing.assert_array_equal(rec.commands.q, ref.commands.q)
    for cam in ref.frame_times:
        np.testing.assert_array_equal(rec.frame_times[cam], ref.frame_times[cam])
    for (t1, a), (t2, b) in zip(_first_images(ref), _first_images(rec)):
        assert t1 == t2 and set(a) == {"observation.images.top", "observation.images.wrist"}
        for key in a:
            assert a[key].dtype == np.uint8 and a[key].shape == (72, 96, 3)
            np.testing.assert_array_equal(a[key], b[key])
    if variant == "messy":
        assert any("base_yaw" in n for n in rec.notes) and any("duplicates dropped" in n for n in rec.notes)


def test_images_are_rgb(bags, robot):
    """The red cube is red in what the policy gets, whatever the bag's encoding."""
    for name in ("clean", "bgr8", "png"):
        (_, imgs), *_ = _first_images(from_bag(bags[name], robot), 1)
        top = imgs["observation.images.top"].reshape(-1, 3).astype(int)
        red = (top[:, 0] > 180) & (top[:, 1] < 60) & (top[:, 2] < 60)
        assert red.sum() > 20, name


def test_missing_topics_list_what_the_bag_has_and_what_is_expected(tmp_path, robot):
    path = write_session(tmp_path / "no_wrist", seconds=0.5, parts=("joint_states", "commands")).path
    with pytest.raises(BagError) as err:
        from_bag(path, robot)
    text = str(err.value)
    assert "missing camera 'top'" in text and "camera 'wrist'" in text and "vla/instruction" in text
    assert "the bag has: /arm_controller/joint_trajectory" in text and "/joint_states [sensor_msgs/msg/JointState] x" in text
    assert "the robot config expects: camera/top/image_raw" in text


def test_instruction_given_when_the_bag_has_none(tmp_path, robot):
    path = write_session(tmp_path / "silent", seconds=1.0, parts=("cameras", "joint_states")).path
    rec = from_bag(path, robot, instruction="stack the blocks")
    assert rec.reference_name == "joint_states" and rec.commands is None
    assert [e.instruction for e in rec.episodes] == ["stack the blocks"]


def test_camera_topics_can_be_mapped(tmp_path, robot):
    path = write_session(tmp_path / "ns", seconds=0.5, namespace="left").path
    rec = from_bag(path, robot)  # namespaced topics are found by their relative names
    assert len(rec.frame_times["top"]) == 16
    with pytest.raises(BagError, match="camera 'top'"):
        from_bag(path, robot, camera_topics={"top": "/cam_high/image_raw"})


def test_episodes_split_on_instruction_changes_and_gaps(tmp_path, robot):
    path = write_session(tmp_path / "eps", seconds=6.0, gap=(2.0, 3.5),
                         instructions=[(0.0, "pick up the red cube"), (4.5, "put it down")]).path
    rec = from_bag(path, robot)
    assert [e.instruction for e in rec.episodes] == ["pick up the red cube"] * 2 + ["put it down"]
    t0 = rec.state.t[0]
    assert rec.episodes[0].end <= t0 + 2.0 and rec.episodes[1].start >= t0 + 3.5
    plans, skipped = rec.observation_times()
    assert {p.episode for p in plans} == {0, 1, 2}
    # no prediction step is compared across the pause
    p = max((p for p in plans if p.episode == 0), key=lambda p: p.t)
    _, valid = rec.reference_targets(p.t, p.episode, 50, 1 / 30)
    assert not valid[-1]
