"""Training data: a local LeRobotDataset (or a rosbag, converted first), checked against a policy.

The dataset is opened with LeRobot's ``LeRobotDataset`` and the policy's own ``delta_timestamps``
(``resolve_delta_timestamps``: one observation, ``chunk_size`` future actions with their
``action_is_pad`` flags), as ``lerobot-train`` does for SmolVLA.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator, Sequence

logger = logging.getLogger(__name__)

INFO_FILE = Path("meta") / "info.json"


def is_dataset_dir(path: Path) -> bool:
    """True when ``path`` holds a LeRobotDataset (``meta/info.json``)."""
    return (path / INFO_FILE).is_file()


def is_bag(path: Path) -> bool:
    """True when ``path`` is a rosbag2 directory (``metadata.yaml``) or a ``.db3`` / ``.mcap`` file."""
    return (path.is_dir() and (path / "metadata.yaml").is_file()) or path.suffix in (".db3", ".mcap")


def resolve_dataset(path: str | Path, work_dir: Path | None = None, robot: str | None = None) -> Path:
    """A LeRobotDataset directory for ``path``: the directory itself, or a rosbag converted first.

    A bag is converted with the eval layer's converter into ``<work_dir>/dataset`` (reused when
    it is already there).

    Raises:
        ValueError: ``path`` does not exist or is neither a dataset nor a bag; what to pass instead.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ValueError(f"--dataset '{path}' does not exist; pass a LeRobotDataset directory (with "
                         f"{INFO_FILE}) or a rosbag2 directory")
    if is_dataset_dir(path):
        return path
    if is_bag(path):
        if not robot:
            raise ValueError(f"--dataset '{path}' is a rosbag: pass --robot <name> (so100, aloha, rby1) so it "
                             "can be converted into a LeRobotDataset, or convert it with `vla-ros convert`")
        from vla_ros.eval.convert import bag_to_dataset  # the eval layer's bag -> LeRobotDataset converter
        from vla_ros.robots import load_robot

        out = (work_dir or path.parent / f"{path.name}_lerobot") / "dataset"
        if not is_dataset_dir(out):
            logger.info("converting rosbag %s into a LeRobotDataset at %s", path, out)
            # frames stored as images: training reads every frame, and needs no video decoder
            bag_to_dataset(path, out, load_robot(robot), videos=False)
        return out
    raise ValueError(f"--dataset '{path}' is not a LeRobotDataset (no {INFO_FILE}) nor a rosbag2 directory "
                     "(no metadata.yaml); pass one of those")


def video_backend() -> str:
    """LeRobot's video decoder here: ``torchcodec`` when its FFmpeg libraries load, else ``pyav``."""
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401  (loads the FFmpeg libraries)

        return "torchcodec"
    except Exception:  # not installed, or no matching FFmpeg on this machine
        return "pyav"


def check_features(meta: Any, config: Any, where: str, policy_name: str) -> None:
    """Raise one ValueError naming every mismatch between a dataset's features and a policy's."""
    features = meta.features
    problems = []
    for key, ft in config.image_features.items():
        if key not in features:
            problems.append(f"camera '{key}' missing")
        elif features[key]["dtype"] not in ("image", "video"):
            problems.append(f"'{key}' is {features[key]['dtype']}, not an image")
    for key, ft in (("observation.state", config.robot_state_feature), ("action", config.action_feature)):
        if ft is None:
            continue
        if key not in features:
            problems.append(f"'{key}' missing")
        elif tuple(features[key]["shape"]) != tuple(ft.shape):
            problems.append(f"'{key}' has shape {tuple(features[key]['shape'])}, the policy {tuple(ft.shape)}")
    if problems:
        cams = sorted(k for k, v in features.items() if v["dtype"] in ("image", "video"))
        raise ValueError(
            f"dataset '{where}' does not fit {policy_name}: " + "; ".join(problems)
            + f" (dataset cameras: {cams}; the policy needs {sorted(config.image_features)})"
        )


def open_dataset(root: str | Path, config: Any, *, episodes: Sequence[int] | None = None,
                 policy_name: str = "the policy"):
    """Open the LeRobotDataset at ``root`` for a SmolVLA ``config`` (features checked).

    Args:
        root: The dataset directory.
        config: The policy's ``SmolVLAConfig`` (its delta indices and features are used).
        episodes: Episode indices to use; ``None``: all.
        policy_name: How errors name the policy.
    """
    from lerobot.datasets.factory import resolve_delta_timestamps
    from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata

    root = Path(root)
    if not is_dataset_dir(root):
        raise ValueError(f"'{root}' is not a LeRobotDataset directory (no {INFO_FILE})")
    repo_id = f"local/{root.name}"
    meta = LeRobotDatasetMetadata(repo_id, root=root)
    check_features(meta, config, str(root), policy_name)
    delta = resolve_delta_timestamps(config, meta)
    backend = video_backend() if meta.video_keys else None
    return LeRobotDataset(repo_id, root=root, episodes=list(episodes) if episodes is not None else None,
                          delta_timestamps=delta, video_backend=backend)


def split_episodes(total: int, held_out: int) -> tuple[list[int], list[int]]:
    """Train / held-out episode indices: the last ``held_out`` episodes are held out."""
    if held_out <= 0:
        return list(range(total)), []
    if held_out >= total:
        raise ValueError(f"cannot hold out {held_out} of {total} episodes; lower --held-out-episodes")
    return list(range(total - held_out)), list(range(total - held_out, total))


def batches(dataset: Any, batch_size: int, *, seed: int = 0, num_workers: int = 0) -> Iterator[dict]:
    """Endless batches of ``dataset``, reshuffled every epoch from ``seed`` (a torch DataLoader)."""
    import torch

    if len(dataset) == 0:
        raise ValueError("the dataset has no frames to train on")
    generator = torch.Generator().manual_seed(seed)
    while True:
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, shuffle=True, generator=generator,
            num_workers=num_workers, drop_last=len(dataset) > batch_size,
        )
        yield from loader
