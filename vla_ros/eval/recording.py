"""What offline evaluation reads: a recording as time series, and its observations on demand.

A :class:`Recording` comes from a rosbag2 (:func:`from_bag`) or a LeRobot dataset
(:func:`from_dataset`). It holds the small streams in memory, sorted by time with duplicates
dropped (joint states in robot order and radians, commanded positions, instructions, recorded
action chunks) and the times of every camera frame; images are decoded only for the observations
evaluated, streamed in time order (:meth:`Recording.observations`).

Times are header stamps where messages have them (images, joint states, chunks, commands with a
non-zero stamp) and bag times otherwise (instructions, commands stamped zero), in seconds.
A command's positions are the target for ``stamp + time_from_start`` of its first point (the
joint_trajectory_controller meaning).
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from ..core.chunk import ActionChunk
from ..core.embodiment import RobotSpec, reorder
from ..transport.codecs import compressed_to_numpy, image_to_numpy, to_rgb8
from ..transport.types import stamp_to_sec
from .bagio import BagError, BagReader

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
#: A gap in joint states longer than this (seconds) ends an episode.
DEFAULT_GAP = 1.0
#: Inputs older than this at an observation make it unusable (the policy node's default).
DEFAULT_MAX_AGE = 0.5


@dataclass
class Series:
    """Samples ``q[i]`` at times ``t[i]`` (sorted, unique)."""

    t: np.ndarray
    q: np.ndarray

    @classmethod
    def build(cls, times: Sequence[float], values: Sequence[np.ndarray], dof: int) -> tuple["Series", int]:
        """Sorted by time, duplicates (same time) dropped; returns (series, dropped duplicates)."""
        if not len(times):
            return cls(np.zeros(0), np.zeros((0, dof))), 0
        t = np.asarray(times, dtype=np.float64)
        q = np.asarray(values, dtype=np.float64).reshape(len(t), dof)
        order = np.argsort(t, kind="stable")
        t, q = t[order], q[order]
        keep = np.concatenate([[True], np.diff(t) > 1e-9])
        return cls(t[keep], q[keep]), int(np.count_nonzero(~keep))

    def __len__(self) -> int:
        return len(self.t)

    def latest(self, t: float) -> int:
        """Index of the last sample at or before ``t`` (-1 if none)."""
        return int(np.searchsorted(self.t, t + 1e-9, side="right")) - 1


@dataclass
class Episode:
    start: float
    end: float
    instruction: str


@dataclass
class Recording:
    robot: RobotSpec
    source: str
    kind: str  # "rosbag2" or "lerobot"
    state: Series
    commands: Series | None
    instructions: list[tuple[float, str]]
    chunks: list[ActionChunk]
    frame_times: dict[str, np.ndarray]  # camera name -> sorted unique stamps
    episodes: list[Episode] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _frames: Any = None  # the frame provider (bag or dataset)

    @property
    def reference(self) -> Series:
        """What predictions are compared with: commanded positions if recorded, else joint states."""
        return self.commands if self.commands is not None and len(self.commands) else self.state

    @property
    def reference_name(self) -> str:
        return "commands" if self.reference is self.commands else "joint_states"

    def episode_at(self, t: float) -> int:
        for i, ep in enumerate(self.episodes):
            if ep.start <= t <= ep.end:
                return i
        return -1

    def observation_times(self, every: int = 1, max_age: float = DEFAULT_MAX_AGE, limit: int | None = None,
                          times: Sequence[float] | None = None,
                          episode: int | None = None) -> tuple[list["ObservationPlan"], dict[str, int]]:
        """Every ``every``-th frame of the first camera (or of ``times``) inside an episode (or
        ``episode``) with fresh inputs: each camera's latest frame and the latest joint state no
        older than ``max_age``.

        Returns the plans and the number of frames skipped per reason.
        """
        cams = list(self.frame_times)
        ref = self.frame_times[cams[0]] if times is None else np.asarray(times, np.float64)
        plans: list[ObservationPlan] = []
        skipped: dict[str, int] = {}
        usable = 0
        for t in ref:
            t = float(t)
            ep = self.episode_at(t) if episode is None else episode
            reason = ""
            if ep < 0:
                reason = "no instruction / outside an episode"
            frames = {}
            if not reason:
                for cam in cams:
                    times = self.frame_times[cam]
                    i = int(np.searchsorted(times, t + 1e-9, side="right")) - 1
                    if i < 0 or t - times[i] > max_age:
                        reason = f"camera {cam} missing or stale"
                        break
                    frames[cam] = float(times[i])
            if not reason:
                k = self.state.latest(t)
                if k < 0 or t - self.state.t[k] > max_age:
                    reason = "joint_states missing or stale"
            if reason:
                skipped[reason] = skipped.get(reason, 0) + 1
                continue
            if usable % every == 0:
                plans.append(ObservationPlan(len(plans), float(t), ep, self.episodes[ep].instruction, frames,
                                             self.state.q[k].copy()))
                if limit is not None and len(plans) >= limit:
                    break
            usable += 1
        return plans, skipped

    def reference_targets(self, t: float, episode: int, horizon: int, dt: float,
                          max_gap: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
        """The recorded positions at ``t + (k+1) dt`` for k < horizon: (values (H, D), valid (H,)).

        Linear interpolation of :attr:`reference` inside the episode; a step is invalid past the
        episode's end or where the nearest samples are more than ``max_gap`` away.
        """
        ref = self.reference
        times = t + dt * np.arange(1, horizon + 1)
        ep = self.episodes[episode]
        out = np.full((horizon, self.robot.dof), np.nan)
        valid = np.zeros(horizon, bool)
        if len(ref) < 2:
            return out, valid
        idx = np.searchsorted(ref.t, times)
        inside = (times >= max(ref.t[0], ep.start)) & (times <= min(ref.t[-1], ep.end))
        lo = np.clip(idx - 1, 0, len(ref) - 1)
        hi = np.clip(idx, 0, len(ref) - 1)
        near = (times - ref.t[lo] <= max_gap) & (ref.t[hi] - times <= max_gap)
        valid = inside & near
        for j in range(self.robot.dof):
            out[:, j] = np.interp(times, ref.t, ref.q[:, j])
        out[~valid] = np.nan
        return out, valid

    def observations(self, plans: Sequence["ObservationPlan"]) -> Iterator[tuple["ObservationPlan", dict[str, np.ndarray]]]:
        """(plan, {policy image key: HxWx3 uint8 RGB}) for each plan, in order."""
        return self._frames.observations(self, plans)


@dataclass
class ObservationPlan:
    index: int
    t: float
    episode: int
    instruction: str
    frames: dict[str, float]  # camera -> stamp of the frame used
    state: np.ndarray  # SI, robot order


def _segment(robot_state: Series, instructions: list[tuple[float, str]], end: float, gap: float) -> list[Episode]:
    """Episodes: from each instruction to the next one, split where joint states pause > ``gap``."""
    episodes = []
    for i, (t0, text) in enumerate(instructions):
        t1 = instructions[i + 1][0] if i + 1 < len(instructions) else end
        if not text.strip() or t1 <= t0:
            continue
        ts = robot_state.t[(robot_state.t >= t0) & (robot_state.t <= t1)]
        cuts = np.nonzero(np.diff(ts) > gap)[0] if len(ts) > 1 else []
        s = t0
        for c in cuts:
            episodes.append(Episode(s, float(ts[c]), text))
            s = float(ts[c + 1])
        episodes.append(Episode(s, t1, text))
    return episodes


# -- rosbag2 ------------------------------------------------------------------------------------
def _header_stamp(raw: bytes | memoryview) -> float:
    """The header stamp of a CDR message whose first field is std_msgs/Header (Image, ...)."""
    fmt = "<iI" if raw[1] == 1 else ">iI"
    sec, nsec = struct.unpack_from(fmt, raw, 4)
    return sec + nsec * 1e-9


def _suffix_match(topics: Sequence[str], name: str) -> list[str]:
    name = name.strip("/")
    return [t for t in topics if t.strip("/") == name or t.endswith("/" + name)]


@dataclass
class BagTopics:
    cameras: dict[str, str]  # camera name -> topic
    joint_states: str
    commands: str | None
    instruction: str | None
    chunks: str | None


def resolve_topics(bag: BagReader, robot: RobotSpec, camera_topics: Mapping[str, str] | None = None,
                   instruction_given: bool = False) -> BagTopics:
    """Find the robot's topics in the bag (namespaces allowed); raise one error listing every
    missing topic, what the bag has and what the robot config expects."""
    camera_topics = dict(camera_topics or {})
    have = {name: info.msg_type for name, info in bag.topics.items()}
    names = sorted(have)
    problems, expect = [], []
    cams: dict[str, str] = {}
    for cam in robot.cameras:
        wanted = camera_topics.get(cam.name)
        options = [wanted] if wanted else [cam.topic, cam.topic + "/compressed"]
        expect.append(" or ".join(options) + " [Image/CompressedImage]")
        found = None
        for opt in options:
            hits = [t for t in _suffix_match(names, opt) if have[t] in IMAGE_TYPES]
            if hits:
                found = hits[0]
                break
        if found is None:
            problems.append(f"camera '{cam.name}' ({' or '.join(options)})")
        else:
            cams[cam.name] = found
    js = [t for t in _suffix_match(names, "joint_states") if have[t] == "sensor_msgs/msg/JointState"]
    if not js:
        js = [t for t in names if have[t] == "sensor_msgs/msg/JointState"]
    expect.append("joint_states [sensor_msgs/msg/JointState]")
    if len(js) != 1 and not any(t.strip("/") == "joint_states" for t in js):
        problems.append("joint_states" if not js else f"joint_states (several JointState topics: {js})")
    elif js:
        js = [t for t in js if t.strip("/") == "joint_states"] or js
    instr = [t for t in _suffix_match(names, "vla/instruction") if have[t] == "std_msgs/msg/String"]
    expect.append("vla/instruction [std_msgs/msg/String] (or --instruction)")
    if not instr and not instruction_given:
        problems.append("vla/instruction (pass --instruction TEXT when the bag has none)")
    cmd = [t for t in _suffix_match(names, f"{robot.controller}/joint_trajectory")
           if have[t] == "trajectory_msgs/msg/JointTrajectory"]
    chunks = [t for t in _suffix_match(names, "vla/action_chunk") if have[t] == "vla_ros/msg/ActionChunk"]
    if problems:
        raise BagError(
            f"bag {bag.path} lacks what robot '{robot.name}' needs: missing {', '.join(problems)}.\n"
            f"  the bag has: {bag.describe() or 'no topics'}\n"
            f"  the robot config expects: {'; '.join(expect)}\n"
            "  map other names with --camera NAME=TOPIC, or choose the matching --robot")
    return BagTopics(cams, js[0], cmd[0] if cmd else None, instr[0] if instr else None, chunks[0] if chunks else None)


class _BagFrames:
    def __init__(self, bag: BagReader, topics: BagTopics) -> None:
        self.bag, self.topics = bag, topics

    def decode(self, msg: Any, msg_type: str) -> np.ndarray:
        if msg_type == "sensor_msgs/msg/CompressedImage":
            return compressed_to_numpy(msg, "rgb8")
        rgb = to_rgb8(image_to_numpy(msg), msg.encoding)
        # a view on the bag's read-only bytes: torch wants writable arrays (one copy, ~0.1 ms at VGA)
        return rgb if rgb.flags.writeable else rgb.copy()

    def observations(self, rec: Recording, plans: Sequence[ObservationPlan]):
        by_topic = {topic: cam for cam, topic in self.topics.cameras.items()}
        keys = {c.name: c.policy_key for c in rec.robot.cameras}
        need: dict[tuple[str, float], list[int]] = {}
        for p in plans:
            for cam, stamp in p.frames.items():
                need.setdefault((cam, round(stamp, 9)), []).append(p.index)
        remaining = {p.index: len(p.frames) for p in plans}
        images: dict[int, dict[str, np.ndarray]] = {p.index: {} for p in plans}
        next_out = 0
        for topic, _, raw in self.bag.messages(list(by_topic), raw=True):
            cam = by_topic[topic]
            key = (cam, round(_header_stamp(raw), 9))
            users = need.pop(key, None)
            if not users:
                continue
            msg_type = self.bag.topics[topic].msg_type
            try:
                rgb = self.decode(self.bag.deserialize(raw, msg_type), msg_type)
            except Exception as exc:  # noqa: BLE001 - named in the error
                raise BagError(f"{topic}: cannot decode the frame stamped {key[1]:.3f}: {exc}") from None
            for i in users:
                images[i][keys[cam]] = rgb
                remaining[i] -= 1
            while next_out < len(plans) and remaining[plans[next_out].index] == 0:
                p = plans[next_out]
                yield p, images.pop(p.index)
                next_out += 1
        if next_out < len(plans):
            raise BagError(f"bag {self.bag.path}: {len(plans) - next_out} observation(s) lost their frames "
                           "on the second read (the bag changed while being evaluated?)")


def from_bag(path: str | Path, robot: RobotSpec, *, camera_topics: Mapping[str, str] | None = None,
             instruction: str | None = None, gap: float = DEFAULT_GAP) -> Recording:
    """Read the small streams of a rosbag2 and the stamps of its frames (images are not decoded)."""
    bag = BagReader(path)
    topics = resolve_topics(bag, robot, camera_topics, instruction_given=bool(instruction))
    names = robot.joint_names
    js_t, js_q, bad_js, extra_names = [], [], 0, set()
    cmd_t, cmd_q, bad_cmd = [], [], 0
    instr: list[tuple[float, str]] = []
    chunks: dict[tuple[float, int], ActionChunk] = {}
    frames: dict[str, list[float]] = {cam: [] for cam in topics.cameras}
    cam_of = {t: c for c, t in topics.cameras.items()}
    small = {topics.joint_states, topics.commands, topics.instruction, topics.chunks} - {None}
    missing_joints: set[str] = set()
    for topic, t_ns, raw in bag.messages(list(small) + list(cam_of), raw=True):
        if topic in cam_of:
            frames[cam_of[topic]].append(_header_stamp(raw))
            continue
        msg = bag.deserialize(raw, bag.topics[topic].msg_type)
        t_bag = t_ns * 1e-9
        if topic == topics.joint_states:
            q, missing = reorder(np.asarray(msg.position, np.float64).reshape(-1), list(msg.name), names)
            extra_names.update(set(msg.name) - set(names))
            if missing or not np.all(np.isfinite(q)):
                bad_js += 1
                missing_joints.update(missing)
                continue
            stamp = stamp_to_sec(msg.header.stamp)
            js_t.append(stamp if stamp > 0 else t_bag)
            js_q.append(q)
        elif topic == topics.commands:
            if not msg.points:
                bad_cmd += 1
                continue
            point = msg.points[0]
            q, missing = reorder(np.asarray(point.positions, np.float64).reshape(-1), list(msg.joint_names), names)
            if missing or not np.all(np.isfinite(q)):
                bad_cmd += 1
                continue
            stamp = stamp_to_sec(msg.header.stamp)
            cmd_t.append((stamp if stamp > 0 else t_bag) + point.time_from_start.sec
                         + point.time_from_start.nanosec * 1e-9)
            cmd_q.append(q)
        elif topic == topics.instruction:
            instr.append((t_bag, str(msg.data)))
        elif topic == topics.chunks:
            h, d = int(msg.horizon), int(msg.action_dim)
            a = np.asarray(msg.actions, np.float32)
            if a.size != h * d or h == 0:
                continue
            a, missing = _reorder_columns(a.reshape(h, d), list(msg.joint_names), names)
            if missing:
                continue
            c = ActionChunk(stamp_to_sec(msg.header.stamp), int(msg.chunk_id), names, a, float(msg.step_period),
                            str(msg.model_variant), float(msg.inference_latency))
            chunks.setdefault((round(c.stamp, 9), c.chunk_id), c)
    notes = []
    if not js_t:
        raise BagError(f"{topics.joint_states}: no joint state names all of robot '{robot.name}''s joints "
                       f"{names} (missing {sorted(missing_joints)}); is --robot right?")
    state, dup_js = Series.build(js_t, js_q, robot.dof)
    commands, dup_cmd = Series.build(cmd_t, cmd_q, robot.dof) if cmd_t else (None, 0)
    if bad_js:
        notes.append(f"{bad_js} joint_states message(s) without all robot joints or with non-finite values skipped")
    if extra_names:
        notes.append(f"joint_states also name {sorted(extra_names)} (ignored)")
    if dup_js or dup_cmd:
        notes.append(f"duplicates dropped: {dup_js} joint_states, {dup_cmd} commands")
    if bad_cmd:
        notes.append(f"{bad_cmd} command(s) without the robot's joints skipped")
    frame_times = {}
    for cam, ts in frames.items():
        arr = np.unique(np.asarray(ts, np.float64))
        if len(arr) < len(ts):
            notes.append(f"camera {cam}: {len(ts) - len(arr)} duplicate frame(s) dropped")
        frame_times[cam] = arr
    instr.sort(key=lambda x: x[0])
    instr = [x for i, x in enumerate(instr) if i == 0 or x != instr[i - 1]]
    if instruction:
        instr = [(min(state.t[0], *(f[0] for f in frame_times.values() if len(f))) - 1e-3, instruction)]
    end = max(state.t[-1], *(f[-1] for f in frame_times.values() if len(f)))
    rec = Recording(robot, str(path), "rosbag2", state, commands, instr,
                    sorted(chunks.values(), key=lambda c: c.stamp), frame_times,
                    _segment(state, instr, end, gap), notes)
    rec._frames = _BagFrames(bag, topics)
    return rec


def _reorder_columns(a: np.ndarray, names: list[str], wanted: list[str]) -> tuple[np.ndarray, list[str]]:
    index = {n: i for i, n in enumerate(names)}
    missing = [n for n in wanted if n not in index or index[n] >= a.shape[1]]
    if missing:
        return a, missing
    return a[:, [index[n] for n in wanted]], []


# -- LeRobot datasets ---------------------------------------------------------------------------
def is_lerobot_dataset(path: str | Path) -> bool:
    return (Path(path) / "meta" / "info.json").is_file()


def dataset_joint_names(names: Sequence[str]) -> list[str]:
    """``shoulder_pan.pos`` -> ``shoulder_pan`` (LeRobot feature names -> joint names)."""
    return [n[:-4] if n.endswith(".pos") else n for n in names]


def open_dataset(path: str | Path):
    """A local LeRobotDataset (v3) at ``path``, loaded without the hub."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    path = Path(path)
    info = json.loads((path / "meta" / "info.json").read_text())
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v3"):
        raise BagError(f"{path}: LeRobot dataset {version or '(no version)'}; this needs a v3.x dataset "
                       "(convert older ones with lerobot's convert_dataset_v21_to_v30)")
    try:
        # pyav decodes everywhere LeRobot installs (torchcodec needs a matching system FFmpeg)
        return LeRobotDataset(repo_id=f"local/{path.name}", root=path, video_backend="pyav")
    except Exception as exc:  # noqa: BLE001 - LeRobot raises many kinds
        raise BagError(f"{path}: cannot load the LeRobot dataset: {type(exc).__name__}: {exc}") from None


def dataset_mapping(ds, robot: RobotSpec, camera_keys: Mapping[str, str] | None = None) -> tuple[list[int], dict[str, str]]:
    """(column of each robot joint in the dataset's state/action, camera name -> dataset image key)."""
    feats = ds.meta.features
    for key in ("observation.state", "action"):
        if key not in feats:
            raise BagError(f"dataset {ds.root} has no '{key}' feature; features: {sorted(feats)}")
    names = dataset_joint_names(feats["observation.state"].get("names") or [])
    if isinstance(feats["observation.state"].get("names"), dict):  # {"motors": [...]}
        names = dataset_joint_names(next(iter(feats["observation.state"]["names"].values())))
    missing = [n for n in robot.joint_names if n not in names]
    if missing:
        raise BagError(f"dataset {ds.root}: observation.state names {names} lack robot '{robot.name}' joints "
                       f"{missing}; choose the matching --robot")
    cols = [names.index(n) for n in robot.joint_names]
    camera_keys = dict(camera_keys or {})
    keys = {}
    img_keys = [k for k, f in feats.items() if f.get("dtype") in ("image", "video")]
    for cam in robot.cameras:
        key = camera_keys.get(cam.name, cam.policy_key)
        if key not in img_keys:
            raise BagError(f"dataset {ds.root} has no image feature '{key}' for camera '{cam.name}'; it has "
                           f"{img_keys}; map one with --camera {cam.name}=<key>")
        keys[cam.name] = key
    return cols, keys


def _to_hwc_uint8(img: Any) -> np.ndarray:
    arr = img.numpy() if hasattr(img, "numpy") else np.asarray(img)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = np.transpose(arr, (1, 2, 0))
    if arr.dtype != np.uint8:
        arr = np.clip(np.round(arr * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


#: Dataset episodes are laid out on one time axis this far apart (seconds).
EPISODE_SPACING = 1000.0


class _DatasetFrames:
    def __init__(self, ds, keys: dict[str, str], index_of: dict[float, int]) -> None:
        self.ds, self.keys, self.index_of = ds, keys, index_of

    def observations(self, rec: Recording, plans: Sequence[ObservationPlan]):
        policy_keys = {c.name: c.policy_key for c in rec.robot.cameras}
        for p in plans:
            item = self.ds[self.index_of[round(p.t, 6)]]
            yield p, {policy_keys[cam]: _to_hwc_uint8(item[key]) for cam, key in self.keys.items()}


def from_dataset(path: str | Path, robot: RobotSpec, *, camera_keys: Mapping[str, str] | None = None) -> Recording:
    """A LeRobot dataset as a recording: states, actions as commands (action[i] is the target for
    the next frame), one episode per dataset episode with its task."""
    ds = open_dataset(path)
    cols, keys = dataset_mapping(ds, robot, camera_keys)
    hf = ds.hf_dataset.with_format(None)
    ep = np.asarray(hf["episode_index"], np.int64)
    ts = np.asarray(hf["timestamp"], np.float64)
    state = np.asarray(hf["observation.state"], np.float64)[:, cols]
    action = np.asarray(hf["action"], np.float64)[:, cols]
    task_idx = np.asarray(hf["task_index"], np.int64)
    tasks = {int(i): str(name) for name, i in zip(ds.meta.tasks.index, ds.meta.tasks["task_index"])}
    t = 1.0 + ep * EPISODE_SPACING + ts
    dt = 1.0 / ds.fps
    st, _ = Series.build(t, robot.from_policy(state), robot.dof)
    cmd, _ = Series.build(t + dt, robot.from_policy(action), robot.dof)
    episodes, instr = [], []
    for e in np.unique(ep):
        sel = ep == e
        text = tasks.get(int(task_idx[sel][0]), "")
        episodes.append(Episode(float(t[sel].min()), float(t[sel].max()), text))
        instr.append((float(t[sel].min()), text))
    frame_times = {cam: np.unique(t) for cam in keys}
    index_of = {round(float(x), 6): i for i, x in enumerate(t)}
    rec = Recording(robot, str(path), "lerobot", st, cmd, instr, [], frame_times, episodes,
                    [f"LeRobot dataset: {ds.num_episodes} episode(s), {ds.num_frames} frames at {ds.fps} fps"])
    rec._frames = _DatasetFrames(ds, keys, index_of)
    return rec


def load_recording(path: str | Path, robot: RobotSpec, *, cameras: Mapping[str, str] | None = None,
                   instruction: str | None = None, gap: float = DEFAULT_GAP) -> Recording:
    if is_lerobot_dataset(path):
        return from_dataset(path, robot, camera_keys=cameras)
    return from_bag(path, robot, camera_topics=cameras, instruction=instruction, gap=gap)
