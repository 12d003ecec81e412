"""rosbag2 <-> LeRobotDataset v3 (LeRobot 0.4.4), in the SO-100 dataset units."""
from __future__ import annotations

import numpy as np
import pytest

from vla_ros.eval.bagio import BagError, BagReader
from vla_ros.eval.convert import bag_to_dataset, dataset_to_bag
from vla_ros.eval.recording import from_bag, open_dataset


def test_bag_to_dataset_to_bag(bags, robot, tmp_path):
    summary = bag_to_dataset(bags["messy"], tmp_path / "ds", robot, videos=True, progress=False)
    assert summary["episodes"] == 1 and summary["frames"] == 90 and summary["fps"] == 30

    ds = open_dataset(tmp_path / "ds")
    assert ds.fps == 30 and ds.num_episodes == 1 and ds.num_frames == 90
    assert ds.meta.features["observation.state"]["names"] == [f"{n}.pos" for n in robot.joint_names]
    item = ds[10]
    assert item["task"] == "pick up the red cube"
    rec = from_bag(bags["clean"], robot)
    t = rec.episodes[0].start + 10 / 30  # the 11th grid point
    k = rec.state.latest(t)
    state_deg = item["observation.state"].numpy()
    np.testing.assert_allclose(state_deg, robot.to_policy(rec.state.q[k]), rtol=1e-6, atol=1e-4)
    assert 0.0 <= state_deg[5] <= 100.0  # the gripper in 0..100
    assert tuple(item["observation.images.top"].shape) == (3, 72, 96)

    back = tmp_path / "back"
    info = dataset_to_bag(tmp_path / "ds", back, robot, storage="sqlite3", progress=False)
    assert info["frames"] == 90 and info["counts"]["/camera/top/image_raw"] == 90
    again = from_bag(back, robot)
    np.testing.assert_allclose(again.state.q[10], rec.state.q[k], atol=1e-5)  # radians again
    assert again.reference_name == "commands" and len(again.episodes) == 1


def test_public_so100_layout_dataset_to_bag(robot, tmp_path):
    """A dataset laid out like the public SO-100 ones (degrees, 0..100 gripper, '.pos' names,
    camera keys of their own) replays as radians with --camera mapping its keys."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    names = [f"{n}.pos" for n in robot.joint_names]
    feats = {"observation.state": {"dtype": "float32", "shape": (6,), "names": names},
             "action": {"dtype": "float32", "shape": (6,), "names": names},
             "observation.images.laptop": {"dtype": "image", "shape": (48, 64, 3), "names": ["height", "width", "channels"]},
             "observation.images.phone": {"dtype": "image", "shape": (48, 64, 3), "names": ["height", "width", "channels"]}}
    ds = LeRobotDataset.create("local/so100_like", 30, feats, root=tmp_path / "so100_like", robot_type="so100",
                               use_videos=False)
    rng = np.random.default_rng(0)
    for ep, task in enumerate(["grasp a lego block", "put it in the bin"]):
        for i in range(12):
            deg = np.array([10.0 * ep + i, -20, 30, 40, 5, 50 + i], np.float32)
            ds.add_frame({"observation.state": deg, "action": deg + 1, "task": task,
                          "observation.images.laptop": rng.integers(0, 255, (48, 64, 3), np.uint8),
                          "observation.images.phone": rng.integers(0, 255, (48, 64, 3), np.uint8)})
        ds.save_episode()
    ds.finalize()

    with pytest.raises(BagError, match="no image feature 'observation.images.top'"):
        dataset_to_bag(tmp_path / "so100_like", tmp_path / "nope", robot, progress=False)
    cams = {"top": "observation.images.laptop", "wrist": "observation.images.phone"}
    info = dataset_to_bag(tmp_path / "so100_like", tmp_path / "bag", robot, camera_keys=cams, progress=False)
    assert info["episodes"] == 2 and info["frames"] == 24
    with BagReader(tmp_path / "bag") as bag:
        texts = [m.data for _, _, m in bag.messages(["/vla/instruction"])]
        js = [m for _, _, m in bag.messages(["/joint_states"])]
    assert texts == ["grasp a lego block", "put it in the bin"]
    q = np.asarray(js[13].position)
    np.testing.assert_allclose(q[:5], np.deg2rad([11, -20, 30, 40, 5]), atol=1e-6)
    np.testing.assert_allclose(q[5], robot.from_policy(np.array([0, 0, 0, 0, 0, 51.0]))[5], atol=1e-6)
    rec = from_bag(tmp_path / "bag", robot)
    assert [e.instruction for e in rec.episodes] == texts


def test_bag_without_usable_frames(tmp_path, robot):
    from vla_ros.eval.synthetic import write_session

    path = write_session(tmp_path / "dark", seconds=0.5, parts=("cameras", "joint_states")).path
    with pytest.raises(BagError, match="instruction"):
        bag_to_dataset(path, tmp_path / "ds", robot, progress=False)
    assert not (tmp_path / "ds").exists()
