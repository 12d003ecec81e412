"""A small synthetic LeRobotDataset (v3) for tests, benchmarks and trying the train commands offline.

Each episode moves the joints from a start pose to a goal pose; every camera shows a coloured
square whose position and colour encode the goal, so the images carry information the policy needs
(the actions are not predictable from the state alone). Written with LeRobot's own recorder API
(``LeRobotDataset.create`` / ``add_frame`` / ``save_episode`` / ``finalize``), images stored as PNG.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from vla_ros.policy.robot_dims import RobotDims

TASKS = ("pick up the red cube", "put the red cube in the bin", "move the arm to the home position")


def dataset_features(dims: RobotDims, image_hw: tuple[int, int]) -> dict:
    """LeRobot feature spec for ``dims``: state, action and one image feature per camera."""
    names = [f"joint_{i}" for i in range(dims.state_dim)]
    features = {
        "observation.state": {"dtype": "float32", "shape": (dims.state_dim,), "names": names},
        "action": {"dtype": "float32", "shape": (dims.action_dim,), "names": names[: dims.action_dim]
                   if dims.action_dim <= dims.state_dim else [f"a_{i}" for i in range(dims.action_dim)]},
    }
    for key in dims.image_keys:
        features[key] = {"dtype": "image", "shape": (image_hw[0], image_hw[1], 3),
                         "names": ["height", "width", "channels"]}
    return features


def _frame_image(goal: np.ndarray, hw: tuple[int, int], camera: int, rng: np.random.Generator) -> np.ndarray:
    h, w = hw
    img = np.full((h, w, 3), 40, np.uint8) + rng.integers(0, 12, (h, w, 3), dtype=np.uint8)
    g = np.tanh(goal)  # in (-1, 1)
    side = max(2, min(h, w) // 4)
    cy = int((g[0] * 0.5 + 0.5) * (h - side))
    cx = int((g[1 % len(g)] * 0.5 + 0.5) * (w - side))
    if camera % 2:
        cy, cx = h - side - cy, w - side - cx
    colour = (np.array([g[2 % len(g)], g[3 % len(g)], g[4 % len(g)]]) * 100 + 150).clip(0, 255)
    img[cy:cy + side, cx:cx + side] = colour.astype(np.uint8)
    return img


def write_synthetic_dataset(
    root: str | Path,
    dims: RobotDims,
    *,
    episodes: int = 4,
    frames: int = 20,
    fps: int = 10,
    image_hw: tuple[int, int] = (48, 64),
    seed: int = 0,
    tasks: Sequence[str] = TASKS,
    repo_id: str = "local/synthetic",
):
    """Write a LeRobotDataset to ``root`` (which must not exist) and return it.

    Args:
        root: Directory of the new dataset.
        dims: The robot: state/action dimension, camera keys, normalization stats (the poses are
            drawn around the stats' mean, spread by their std).
        episodes, frames, fps: Episodes, frames per episode, frame rate.
        image_hw: Height and width of the camera images.
        seed: Seed of everything random (the same arguments write the same data).
        tasks: Instructions, used in turn per episode.
        repo_id: The dataset's name in its metadata.
    """
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    if episodes < 1 or frames < 2:
        raise ValueError(f"need at least 1 episode of 2 frames, got {episodes} x {frames}")
    stats = dims.stats()
    s_mean, s_std = np.asarray(stats["observation.state"]["mean"]), np.asarray(stats["observation.state"]["std"])
    a_mean, a_std = np.asarray(stats["action"]["mean"]), np.asarray(stats["action"]["std"])
    rng = np.random.default_rng(seed)
    dataset = LeRobotDataset.create(repo_id, fps, dataset_features(dims, image_hw), root=root, use_videos=False)
    for ep in range(episodes):
        start = rng.uniform(-1.5, 1.5, dims.state_dim)
        goal = rng.uniform(-1.5, 1.5, max(dims.state_dim, dims.action_dim))
        for t in range(frames):
            alpha = (t + 1) / frames
            pose = start + (goal[: dims.state_dim] - start) * min(1.0, alpha)
            nxt = start + (goal[: dims.state_dim] - start) * min(1.0, alpha + 1.0 / frames)
            target = np.resize(nxt, dims.action_dim)
            frame = {
                "observation.state": (s_mean + s_std * pose).astype(np.float32),
                "action": (a_mean + a_std * target).astype(np.float32),
                "task": tasks[ep % len(tasks)],
            }
            for cam, key in enumerate(dims.image_keys):
                frame[key] = _frame_image(goal, image_hw, cam, rng)
            dataset.add_frame(frame)
        dataset.save_episode()
    dataset.finalize()
    return dataset
