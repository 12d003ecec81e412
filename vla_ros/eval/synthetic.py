"""Synthetic mock-robot sessions written as real rosbag2 files (tests, benchmarks, demos).

A :class:`~vla_ros.robots.mock.MockArm` follows a smooth scripted target (a slow sine per joint,
the gripper opening and closing) sent as trajectory_msgs/JointTrajectory commands at the robot's
control rate; joint_states are published at its state rate, each camera renders the arm with
:class:`~vla_ros.robots.scene.SceneRenderer` at its rate, an ``ActionChunk`` of the upcoming
targets is published at the policy's replanning cadence, and instructions start episodes.
Everything is stamped on one clock that starts at ``start`` (epoch seconds); the bag time of a
message is its stamp plus a small transport delay.

Options make the awkward bags real bags have: bgr8 or compressed images, joint states in another
order or with extra joints, duplicated or out-of-order messages, missing topics, sqlite3 storage.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core.embodiment import RobotSpec
from ..robots import load_robot
from ..robots.mock import MockArm
from ..robots.scene import SceneRenderer
from ..transport import types
from ..transport.codecs import numpy_to_compressed, numpy_to_image
from .bagio import BagWriter, ns

PARTS = ("cameras", "joint_states", "instruction", "chunks", "commands")


class MessageFactory:
    """Builds rosbags messages the way a port does (``new`` / ``header``), without a middleware."""

    backend = "rosbags"

    def new(self, msg_type: str, **fields: Any) -> Any:
        return types.new(msg_type, **fields)

    def stamp(self, t: float) -> Any:
        sec = int(t // 1)
        return types.new("builtin_interfaces/msg/Time", sec=sec, nanosec=min(int(round((t - sec) * 1e9)), 999_999_999))

    def header(self, t: float, frame_id: str = "") -> Any:
        return types.new("std_msgs/msg/Header", stamp=self.stamp(t), frame_id=frame_id)


MSGS = MessageFactory()


@dataclass
class SessionInfo:
    """What was written: counts per topic, start/end stamps, the episodes' instructions."""

    path: Path
    counts: dict[str, int] = field(default_factory=dict)
    start: float = 0.0
    end: float = 0.0
    instructions: list[tuple[float, str]] = field(default_factory=list)


def target_at(spec: RobotSpec, t: float) -> np.ndarray:
    """The scripted target at ``t`` seconds into the session (radians, robot order)."""
    span = spec.upper - spec.lower
    home = spec.home
    q = home + 0.25 * span * np.sin(2 * np.pi * 0.25 * t + np.arange(spec.dof) * 0.7) * 0.5
    for i, name in enumerate(spec.joint_names):
        if "gripper" in name:  # open for 1.5 s, closed for 1.5 s
            closed = int(t / 1.5) % 2 == 1
            q[i] = spec.joints[i].lower + (0.15 if closed else 0.85) * span[i]
    return np.clip(q, spec.lower, spec.upper)


def chunk_msg(spec: RobotSpec, stamp: float, chunk_id: int, actions: np.ndarray, variant: str = "recorded",
              latency: float = 0.0) -> Any:
    actions = np.asarray(actions, dtype=np.float32)
    return MSGS.new(
        "vla_ros/msg/ActionChunk", header=MSGS.header(stamp), chunk_id=chunk_id, joint_names=spec.joint_names,
        horizon=actions.shape[0], action_dim=actions.shape[1], step_period=1.0 / spec.policy_fps,
        actions=actions.reshape(-1), model_variant=variant, inference_latency=latency)


def command_msg(names: Sequence[str], positions: np.ndarray, stamp: float, time_from_start: float) -> Any:
    sec = int(time_from_start // 1)
    point = MSGS.new("trajectory_msgs/msg/JointTrajectoryPoint", positions=np.asarray(positions, np.float64),
                     time_from_start=MSGS.new("builtin_interfaces/msg/Duration", sec=sec,
                                              nanosec=int(round((time_from_start - sec) * 1e9))))
    return MSGS.new("trajectory_msgs/msg/JointTrajectory", header=MSGS.header(stamp), joint_names=list(names),
                    points=[point])


def joint_state_msg(names: Sequence[str], positions: np.ndarray, stamp: float) -> Any:
    return MSGS.new("sensor_msgs/msg/JointState", header=MSGS.header(stamp), name=list(names),
                    position=np.asarray(positions, np.float64), velocity=np.zeros(0), effort=np.zeros(0))


def image_msg(rgb: np.ndarray, stamp: float, frame_id: str, encoding: str = "rgb8",
              compressed: str = "") -> Any:
    if compressed:
        return numpy_to_compressed(MSGS, rgb, compressed, encoding="rgb8", stamp_sec=stamp, frame_id=frame_id)
    if encoding == "bgr8":
        rgb = np.ascontiguousarray(rgb[:, :, ::-1])
    return numpy_to_image(MSGS, np.ascontiguousarray(rgb), encoding, stamp_sec=stamp, frame_id=frame_id)


def write_session(
    path: str | Path,
    robot: str | RobotSpec = "so100",
    seconds: float = 3.0,
    *,
    storage: str = "mcap",
    version: int = 9,
    image_size: tuple[int, int] = (96, 72),
    encoding: str = "rgb8",
    compressed: str = "",
    instructions: Sequence[tuple[float, str]] = ((0.0, "pick up the red cube"),),
    parts: Sequence[str] = PARTS,
    joint_order: Sequence[str] | None = None,
    extra_joints: Sequence[str] = (),
    duplicate_every: int = 0,
    swap_every: int = 0,
    gap: tuple[float, float] | None = None,
    start: float = 1_700_000_000.0,
    delay: float = 0.001,
    namespace: str = "",
) -> SessionInfo:
    """Write a mock-robot session of ``seconds`` to a new bag at ``path``.

    Args:
        image_size: (width, height) of every camera.
        encoding: rgb8 or bgr8 raw images; ``compressed``: "jpeg"/"png" writes CompressedImage on
            ``camera/<name>/image_raw/compressed`` instead.
        instructions: (seconds into the session, text); each starts an episode.
        parts: which of cameras, joint_states, instruction, chunks, commands to write.
        joint_order: joint_states name order (default the robot's); ``extra_joints`` are appended
            (with position 0).
        duplicate_every / swap_every: every n-th joint_states and camera message is written twice /
            swapped with the next one (header stamps out of order in the bag).
        gap: (from, to) seconds with no messages at all (a recording pause).
    """
    spec = robot if isinstance(robot, RobotSpec) else load_robot(robot)
    prefix = f"/{namespace.strip('/')}" if namespace.strip("/") else ""
    width, height = image_size
    arm = MockArm(spec)
    renderers = {c.name: SceneRenderer(spec, c.name, width, height) for c in spec.cameras}
    names = list(joint_order or spec.joint_names)
    js_names = names + list(extra_joints)
    order = [spec.joint_names.index(n) for n in names]
    control_dt = 1.0 / spec.control_rate
    state_dt = 1.0 / spec.state_rate
    step = 1.0 / spec.policy_fps
    horizon = 50
    replan = horizon * step / 2

    events: list[tuple[float, str, str, Any]] = []  # (bag time, topic, type, msg)

    def emit(t: float, topic: str, msg_type: str, msg: Any) -> None:
        if gap is None or not gap[0] <= t - start < gap[1]:
            events.append((t + delay, prefix + topic, msg_type, msg))

    if "instruction" in parts:
        for offset, text in instructions:
            emit(start + offset, "/vla/instruction", "std_msgs/msg/String", MSGS.new("std_msgs/msg/String", data=text))
    n_ticks = int(round(seconds / control_dt))
    next_state = next_chunk = 0.0
    next_frame = {c.name: 0.0 for c in spec.cameras}
    frame_no = {c.name: 0 for c in spec.cameras}
    chunk_id = 0
    for k in range(n_ticks + 1):
        rel = k * control_dt
        t = start + rel
        if "chunks" in parts and rel >= next_chunk - 1e-9:
            actions = np.array([target_at(spec, rel + (i + 1) * step) for i in range(horizon)])
            emit(t, "/vla/action_chunk", "vla_ros/msg/ActionChunk", chunk_msg(spec, t, chunk_id, actions))
            chunk_id += 1
            next_chunk += replan
        target = target_at(spec, rel + control_dt)
        arm.command(spec.joint_names, target)
        if "commands" in parts:
            emit(t, f"/{spec.controller}/joint_trajectory", "trajectory_msgs/msg/JointTrajectory",
                 command_msg(spec.joint_names, target, t, control_dt))
        if "joint_states" in parts and rel >= next_state - 1e-9:
            q = arm.q[order]
            emit(t, "/joint_states", "sensor_msgs/msg/JointState",
                 joint_state_msg(js_names, np.concatenate([q, np.zeros(len(extra_joints))]), t))
            next_state += state_dt
        if "cameras" in parts:
            for cam in spec.cameras:
                if rel >= next_frame[cam.name] - 1e-9:
                    rgb = renderers[cam.name].render(arm.q, frame_no[cam.name])
                    topic = f"/camera/{cam.name}/image_raw" + ("/compressed" if compressed else "")
                    msg_type = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
                    emit(t, topic, msg_type, image_msg(rgb, t, f"{cam.name}_optical_frame", encoding, compressed))
                    frame_no[cam.name] += 1
                    next_frame[cam.name] += 1.0 / cam.rate
        arm.step(control_dt)

    events.sort(key=lambda e: e[0])
    if duplicate_every or swap_every:
        events = _disturb(events, duplicate_every, swap_every)
    info = SessionInfo(Path(path), start=start, end=start + seconds,
                       instructions=[(start + o, s) for o, s in instructions] if "instruction" in parts else [])
    with BagWriter(path, storage=storage, version=version) as bag:
        for t, topic, msg_type, msg in events:
            bag.add_topic(topic, msg_type)
            bag.write_msg(topic, ns(t), msg)
        info.counts = dict(bag.counts)
    return info


def _disturb(events: list, duplicate_every: int, swap_every: int) -> list:
    """Duplicate / swap every n-th joint_states or camera message (keeping bag times increasing,
    so the header stamps come out of order)."""
    out = list(events)
    sensor = [i for i, e in enumerate(out) if e[2] in ("sensor_msgs/msg/JointState", "sensor_msgs/msg/Image",
                                                        "sensor_msgs/msg/CompressedImage")]
    if swap_every:
        by_topic: dict[str, list[int]] = {}
        for i in sensor:
            by_topic.setdefault(out[i][1], []).append(i)
        for idx in by_topic.values():
            for n in range(0, len(idx) - 1, swap_every):
                a, b = idx[n], idx[n + 1]
                (ta, topic, typ, ma), (tb, _, _, mb) = out[a], out[b]
                out[a], out[b] = (ta, topic, typ, mb), (tb, topic, typ, ma)
    if duplicate_every:
        extra = [(out[i][0] + 1e-6, *out[i][1:]) for n, i in enumerate(sensor) if n % duplicate_every == 0]
        out = sorted(out + extra, key=lambda e: e[0])
    return out
