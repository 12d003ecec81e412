"""rosbag2 <-> LeRobotDataset (v3, LeRobot 0.4.4).

bag -> dataset: frames on a regular grid at ``fps`` (default the robot's policy_fps) inside each
episode (an instruction until the next one, split where the recording pauses or inputs go stale);
per frame the latest image of each camera, the latest joint state as ``observation.state`` and the
commanded position for the next frame as ``action`` (the next joint state when no commands were
recorded), both in the policy's units (``to_policy``: SO-100 degrees and a 0..100 gripper) with
LeRobot's names (``shoulder_pan.pos``); the instruction is the frame's task. Written with
``LeRobotDataset.create`` / ``add_frame`` / ``save_episode`` / ``finalize``.

dataset -> bag: each frame becomes joint_states (radians, ``from_policy``), one Image (rgb8) per
camera, a JointTrajectory command (the frame's action, to be reached one frame later) and, at the
start of each episode, its task on ``vla/instruction``; episodes follow each other with a pause,
so the bag replays and evaluates like a live recording.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Mapping

import numpy as np

from ..core.embodiment import RobotSpec
from .bagio import BagError, BagWriter, ns
from .recording import DEFAULT_GAP, DEFAULT_MAX_AGE, Recording, from_bag, from_dataset
from .synthetic import MSGS, command_msg, image_msg, joint_state_msg

#: Bag time of the first frame when a dataset becomes a bag (deterministic output).
BAG_EPOCH = 1_700_000_000.0
#: Pause between episodes in a bag made from a dataset (longer than the episode gap).
EPISODE_PAUSE = 2.0


def dataset_features(robot: RobotSpec, shapes: Mapping[str, tuple[int, int]], videos: bool) -> dict:
    names = [f"{n}.pos" for n in robot.joint_names]
    feats = {
        "observation.state": {"dtype": "float32", "shape": (robot.dof,), "names": names},
        "action": {"dtype": "float32", "shape": (robot.dof,), "names": names},
    }
    for cam in robot.cameras:
        h, w = shapes[cam.name]
        feats[cam.policy_key] = {"dtype": "video" if videos else "image", "shape": (h, w, 3),
                                 "names": ["height", "width", "channels"]}
    return feats


def _grid_plans(rec: Recording, fps: float, max_age: float, min_frames: int):
    """Runs of consecutive usable grid times, one list of plans per dataset episode."""
    runs, skipped = [], 0
    for e, ep in enumerate(rec.episodes):
        times = ep.start + np.arange(int(np.floor((ep.end - ep.start) * fps)) + 1) / fps
        plans, _ = rec.observation_times(1, max_age, times=times, episode=e)
        ok = {round(p.t, 9): p for p in plans}
        run = []
        for t in times:
            p = ok.get(round(float(t), 9))
            if p is None:
                skipped += 1
                if len(run) >= min_frames:
                    runs.append(run)
                run = []
            else:
                run.append(p)
        if len(run) >= min_frames:
            runs.append(run)
    return runs, skipped


def bag_to_dataset(bag: str | Path, out: str | Path, robot: RobotSpec, *, fps: float | None = None,
                   videos: bool = True, vcodec: str = "libsvtav1", camera_topics: Mapping[str, str] | None = None,
                   instruction: str | None = None, gap: float = DEFAULT_GAP, max_age: float = DEFAULT_MAX_AGE,
                   min_frames: int = 2, repo_id: str | None = None, progress: bool = True) -> dict:
    """Convert a rosbag2 into a new local LeRobotDataset at ``out``; returns a summary."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from tqdm import tqdm

    out = Path(out)
    if out.exists():
        raise BagError(f"{out} exists already; choose a new directory for the dataset")
    rec = from_bag(bag, robot, camera_topics=camera_topics, instruction=instruction, gap=gap)
    fps = float(fps or robot.policy_fps)
    if int(round(fps)) != fps:
        raise ValueError(f"LeRobot datasets need an integer fps, got {fps}")
    runs, skipped = _grid_plans(rec, fps, max_age, min_frames)
    if not runs:
        raise BagError(f"bag {bag}: no stretch of at least {min_frames} frames with an instruction, fresh "
                       f"images and joint states ({len(rec.episodes)} episode(s) found)")
    dt = 1.0 / fps
    ref = rec.reference
    ds = None
    n_frames = 0
    bar = tqdm(total=sum(len(r) for r in runs), desc="convert", unit="frame", disable=not progress, dynamic_ncols=True)
    flat, run_of = [], {}
    for r, run in enumerate(runs):
        for plan in run:
            plan.index = len(flat)
            run_of[plan.index] = r
            flat.append(plan)
    current = 0
    try:
        for plan, images in rec.observations(flat):
            if run_of[plan.index] != current:
                ds.save_episode()
                current = run_of[plan.index]
            if ds is None:
                shapes = {c.name: images[c.policy_key].shape[:2] for c in robot.cameras}
                ds = LeRobotDataset.create(repo_id or f"local/{out.name}", int(round(fps)),
                                           dataset_features(robot, shapes, videos), root=out,
                                           robot_type=robot.name, use_videos=videos, vcodec=vcodec)
            target, valid = rec.reference_targets(plan.t, plan.episode, 1, dt, max_gap=max(0.25, 2 * dt))
            action = target[0] if valid[0] else np.array([np.interp(plan.t + dt, ref.t, ref.q[:, j])
                                                          for j in range(robot.dof)])
            frame = {"observation.state": robot.to_policy(plan.state).astype(np.float32),
                     "action": robot.to_policy(action).astype(np.float32), "task": plan.instruction}
            for c in robot.cameras:
                frame[c.policy_key] = images[c.policy_key]
            ds.add_frame(frame)
            n_frames += 1
            bar.update(1)
        ds.save_episode()
    except BaseException:
        if ds is not None:
            ds.finalize()
        shutil.rmtree(out, ignore_errors=True)  # no half-written dataset
        raise
    finally:
        bar.close()
    ds.finalize()
    return {"dataset": str(out), "episodes": len(runs), "frames": n_frames, "fps": fps,
            "grid_points_skipped": skipped, "compared_with": rec.reference_name, "notes": rec.notes}


def dataset_to_bag(dataset: str | Path, out: str | Path, robot: RobotSpec, *, storage: str = "mcap",
                   version: int = 9, camera_keys: Mapping[str, str] | None = None, start: float = BAG_EPOCH,
                   progress: bool = True) -> dict:
    """Convert a local LeRobotDataset (v3) into a new rosbag2 at ``out``; returns a summary."""
    from tqdm import tqdm

    rec = from_dataset(dataset, robot, camera_keys=camera_keys)
    plans, _ = rec.observation_times(1, max_age=float("inf"))
    if not plans:
        raise BagError(f"dataset {dataset} has no frames")
    fps = rec._frames.ds.fps
    dt = 1.0 / fps
    # lay episodes end to end, EPISODE_PAUSE apart
    offsets, t_next = {}, start
    for e, ep in enumerate(rec.episodes):
        offsets[e] = t_next - ep.start
        t_next += (ep.end - ep.start) + dt + EPISODE_PAUSE
    topic_of = {c.name: f"/{c.topic}" for c in robot.cameras}
    cmd_topic = f"/{robot.controller}/joint_trajectory"
    cmd = rec.commands
    count = 0
    with BagWriter(out, storage=storage, version=version) as bag:
        bag.add_topic("/vla/instruction", "std_msgs/msg/String")
        bag.add_topic("/joint_states", "sensor_msgs/msg/JointState")
        bag.add_topic(cmd_topic, "trajectory_msgs/msg/JointTrajectory")
        for c in robot.cameras:
            bag.add_topic(topic_of[c.name], "sensor_msgs/msg/Image")
        for e, ep in enumerate(rec.episodes):
            bag.write_msg("/vla/instruction", ns(ep.start + offsets[e] - 0.001),
                          MSGS.new("std_msgs/msg/String", data=ep.instruction))
        for plan, images in tqdm(rec.observations(plans), total=len(plans), desc="convert", unit="frame",
                                 disable=not progress, dynamic_ncols=True):
            t = plan.t + offsets[plan.episode]
            bag.write_msg("/joint_states", ns(t), joint_state_msg(robot.joint_names, plan.state, t))
            for c in robot.cameras:
                bag.write_msg(topic_of[c.name], ns(t), image_msg(images[c.policy_key], t, f"{c.name}_optical_frame"))
            k = int(np.searchsorted(cmd.t, plan.t + dt - 1e-9))
            if k < len(cmd) and abs(cmd.t[k] - (plan.t + dt)) < 1e-6:
                bag.write_msg(cmd_topic, ns(t), command_msg(robot.joint_names, cmd.q[k], t, dt))
            count += 1
        counts = dict(bag.counts)
    return {"bag": str(out), "episodes": len(rec.episodes), "frames": count, "fps": fps, "counts": counts}
