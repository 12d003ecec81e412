"""Metrics of predicted action chunks against a recording (numpy only).

Errors are in the robot's units on the topics (radians, SI): per joint and per horizon step, L1
(mean absolute error) and MSE over every valid (observation, step) pair; the final-step error is
the L1 at the last step of each chunk. Gripper agreement: the fraction of valid steps where the
prediction and the recording agree on open / closed (a gripper joint is open above the middle of
its range). Smoothness: :func:`vla_ros.core.smoothness.boundary_step_ratio` of the command stream
:class:`vla_ros.core.player.ChunkPlayer` makes from the chunks at the robot's control rate, the
same measure as the chunking benchmark.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..core.chunk import ActionChunk
from ..core.embodiment import RobotSpec
from ..core.player import ChunkPlayer
from ..core.smoothness import boundary_step_ratio


def gripper_joints(robot: RobotSpec) -> list[int]:
    return [i for i, n in enumerate(robot.joint_names) if "gripper" in n]


def _stats(x: Sequence[float]) -> dict[str, float]:
    a = np.asarray(x, np.float64)
    if not len(a):
        return {"count": 0}
    return {"count": int(len(a)), "mean": float(a.mean()), "median": float(np.median(a)),
            "p90": float(np.percentile(a, 90)), "p99": float(np.percentile(a, 99)),
            "min": float(a.min()), "max": float(a.max())}


def _nanmean(x: np.ndarray, axis) -> np.ndarray:
    count = np.sum(np.isfinite(x), axis=axis)
    total = np.nansum(x, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def error_metrics(robot: RobotSpec, pred: np.ndarray, ref: np.ndarray, valid: np.ndarray) -> dict:
    """pred, ref: (N, H, D) radians; valid: (N, H)."""
    names = robot.joint_names
    err = np.where(valid[:, :, None], pred - ref, np.nan)
    abs_err, sq_err = np.abs(err), err ** 2
    n_valid = int(valid.sum())
    out: dict = {"valid_steps": n_valid, "observations": int(pred.shape[0]), "horizon": int(pred.shape[1])}
    if n_valid == 0:
        out["note"] = "no prediction step could be compared with the recording"
        return out
    per_joint_l1 = _nanmean(abs_err.reshape(-1, len(names)), 0)
    per_joint_mse = _nanmean(sq_err.reshape(-1, len(names)), 0)
    per_step_l1 = _nanmean(abs_err.transpose(1, 0, 2).reshape(pred.shape[1], -1), 1)
    per_step_mse = _nanmean(sq_err.transpose(1, 0, 2).reshape(pred.shape[1], -1), 1)
    last = valid[:, -1]
    final = abs_err[last, -1, :] if last.any() else np.zeros((0, len(names)))
    out.update({
        "l1": float(np.nanmean(abs_err)), "mse": float(np.nanmean(sq_err)),
        "per_joint": {n: {"l1": float(per_joint_l1[j]), "mse": float(per_joint_mse[j])} for j, n in enumerate(names)},
        "per_step": {"l1": [float(v) for v in per_step_l1], "mse": [float(v) for v in per_step_mse]},
        "final_step": {"l1": float(final.mean()) if len(final) else None, "count": int(len(final)),
                       "per_joint_l1": {n: float(final[:, j].mean()) for j, n in enumerate(names)} if len(final) else {}},
    })
    grippers = gripper_joints(robot)
    if grippers:
        agree, total = 0, 0
        per = {}
        for g in grippers:
            mid = 0.5 * (robot.lower[g] + robot.upper[g])
            p_open, r_open = pred[:, :, g] > mid, ref[:, :, g] > mid
            same = (p_open == r_open) & valid
            per[names[g]] = float(same.sum() / n_valid)
            agree += int(same.sum())
            total += n_valid
        out["gripper_agreement"] = {"mean": agree / total, "per_gripper": per}
    return out


@dataclass
class PlayedStream:
    t: np.ndarray  # (T,) control ticks
    q: np.ndarray  # (T, D) commands
    is_boundary: np.ndarray  # (T-1,)
    chunks_used: int


def played_stream(chunks: Sequence[ActionChunk], dof: int, control_rate: float, aggregation: str = "crossfade",
                  crossfade_time: float = 0.25, replan_fraction: float = 0.5) -> PlayedStream | None:
    """The command stream a controller bridge would play from ``chunks`` (one episode).

    Chunks arrive at their observation stamp (no inference delay: deterministic) and are taken
    at the policy node's cadence: the next one once ``replan_fraction`` of the playing chunk's
    duration has passed (each chunk when they are sparser than that). As in bench/chunking.py,
    the steps from a chunk's arrival to the end of its blend with the previous one
    (``AddResult.blend_end``) are the boundary steps, and the stream starts at the second chunk
    (the first one fades in from rest).
    """
    chunks = sorted(chunks, key=lambda c: c.stamp)
    if not chunks:
        return None
    used = [chunks[0]]
    for c in chunks[1:]:
        prev = used[-1]
        if c.stamp >= prev.stamp + replan_fraction * prev.horizon * prev.step_period - 1e-9:
            used.append(c)
    period = 1.0 / control_rate
    t0, t_end = used[0].stamp, used[-1].end_time
    ticks = t0 + period * np.arange(1, int(np.floor((t_end - t0) / period)) + 1)
    if len(ticks) < 2:
        return None
    player = ChunkPlayer(dof, aggregation, crossfade_time)
    q = np.zeros((len(ticks), dof))
    windows: list[tuple[float, float]] = []
    k = 0
    current = used[0].actions[0].astype(np.float64)
    for i, now in enumerate(ticks):
        while k < len(used) and used[k].stamp <= now + 1e-9:
            arrival = float(used[k].stamp)
            res = player.add(used[k], arrival, current)
            if k > 0 and res.kept_steps:
                end = getattr(res, "blend_end", None)
                windows.append((arrival, arrival + crossfade_time if end is None else float(end)))
            k += 1
        s = player.sample(now)
        current = current if s is None else s
        q[i] = current
    boundary = np.zeros(len(ticks) - 1, bool)
    for a, end in windows:
        boundary |= (ticks[1:] >= a) & (ticks[:-1] <= end)
    start = int(np.searchsorted(ticks, used[1].stamp)) if len(used) > 1 else 0
    return PlayedStream(ticks[start:], q[start:], boundary[start:], len(used))


def smoothness(streams: Sequence[PlayedStream | None]) -> dict:
    ratios = []
    for s in streams:
        if s is None or len(s.t) < 3:
            continue
        r = boundary_step_ratio(s.q, s.is_boundary)
        if np.isfinite(r):
            ratios.append(r)
    if not ratios:
        return {"boundary_step_ratio": None, "episodes": 0}
    return {"boundary_step_ratio": float(np.median(ratios)), "worst": float(np.max(ratios)),
            "per_episode": [float(r) for r in ratios], "episodes": len(ratios)}


@dataclass
class ModelRun:
    """Everything one model produced on a recording."""

    name: str
    checkpoint: str = ""
    times: list[float] = field(default_factory=list)  # observation stamps
    episodes: list[int] = field(default_factory=list)
    predictions: list[np.ndarray] = field(default_factory=list)  # (H, D) radians
    latencies: list[float] = field(default_factory=list)  # seconds in predict_chunk
    step_period: float = 0.0

    def chunks(self, robot: RobotSpec, episode: int) -> list[ActionChunk]:
        return [ActionChunk(t, i, robot.joint_names, a.astype(np.float32), self.step_period, self.name)
                for i, (t, e, a) in enumerate(zip(self.times, self.episodes, self.predictions)) if e == episode]


def latency_stats(latencies: Sequence[float]) -> dict[str, float]:
    return {k: (v * 1e3 if k != "count" else v) for k, v in _stats(latencies).items()}
