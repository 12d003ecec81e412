"""Offline evaluation: a recording, one or more models, the same runtime as the policy node.

No middleware: observations are rebuilt from the recording the way the policy node builds them
(RGB images per policy key, joint positions mapped to the policy's units with the robot spec's
``to_policy``), each goes through :meth:`PolicyRuntime.predict_chunk` with a fixed seed (the
observation's index plus ``seed``, the same for every model), and the chunk is mapped back to
radians with ``from_policy`` and compared with the recording (see :mod:`vla_ros.eval.metrics`).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..core.embodiment import RobotSpec
from . import metrics as M
from .recording import DEFAULT_MAX_AGE, Recording

log = logging.getLogger(__name__)


@dataclass
class EvalConfig:
    every: int = 1
    seed: int = 0
    max_observations: int | None = None
    max_age: float = DEFAULT_MAX_AGE
    aggregation: str = "crossfade"
    crossfade_time: float = 0.25
    replan_fraction: float = 0.5
    progress: bool = True


@dataclass
class EvalResult:
    robot: RobotSpec
    recording: Recording
    config: EvalConfig
    runs: dict[str, M.ModelRun]
    reference: np.ndarray  # (N, H, D) recorded positions at the chunks' step times
    valid: np.ndarray  # (N, H)
    plan_times: np.ndarray
    plan_episodes: np.ndarray
    skipped: dict[str, int]
    metrics: dict[str, dict] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        rec = self.recording
        return {
            "source": rec.source, "kind": rec.kind, "robot": self.robot.name,
            "joints": self.robot.joint_names, "compared_with": rec.reference_name,
            "observations": int(len(self.plan_times)), "every": self.config.every, "seed": self.config.seed,
            "episodes": [{"start": e.start, "end": e.end, "instruction": e.instruction} for e in rec.episodes],
            "skipped_frames": self.skipped, "notes": rec.notes,
            "models": self.metrics, "timing_s": self.timing,
        }


def evaluate(recording: Recording, runtimes: Mapping[str, Any], config: EvalConfig | None = None) -> EvalResult:
    """Run every runtime on the recording's observations and compute the metrics."""
    from tqdm import tqdm

    cfg = config or EvalConfig()
    if cfg.every < 1:
        raise ValueError(f"every must be >= 1, got {cfg.every}")
    robot = recording.robot
    t_start = time.perf_counter()
    plans, skipped = recording.observation_times(cfg.every, cfg.max_age, cfg.max_observations)
    if not plans:
        raise ValueError(
            f"{recording.source}: no observation to evaluate (frames skipped: {skipped or 'none'}; "
            f"episodes: {len(recording.episodes)}). Does the recording have an instruction, images and "
            "joint states at the same time?")
    runs = {name: M.ModelRun(name, getattr(rt, "checkpoint", ""), step_period=1.0 / robot.policy_fps)
            for name, rt in runtimes.items()}
    horizons = {name: int(rt.chunk_size) for name, rt in runtimes.items()}
    horizon = max(horizons.values())
    predict_time = 0.0
    bar = tqdm(total=len(plans) * len(runtimes), desc="eval", unit="chunk", disable=not cfg.progress,
               dynamic_ncols=True)
    try:
        for plan, images in recording.observations(plans):
            state = robot.to_policy(plan.state).astype(np.float32)
            for name, rt in runtimes.items():
                t0 = time.perf_counter()
                actions = rt.predict_chunk(images, state, plan.instruction, seed=cfg.seed + plan.index)
                predict_time += time.perf_counter() - t0
                actions = np.asarray(actions, np.float64)
                if actions.ndim != 2 or actions.shape[1] != robot.dof:
                    raise ValueError(f"model '{name}' returned actions of shape {actions.shape}; "
                                     f"robot '{robot.name}' has {robot.dof} joints")
                run = runs[name]
                run.times.append(plan.t)
                run.episodes.append(plan.episode)
                run.predictions.append(robot.from_policy(actions))
                run.latencies.append(float(rt.last_timing.get("total", time.perf_counter() - t0)))
                bar.update(1)
    finally:
        bar.close()
    t_infer_end = time.perf_counter()
    dt = 1.0 / robot.policy_fps
    ref = np.full((len(plans), horizon, robot.dof), np.nan)
    valid = np.zeros((len(plans), horizon), bool)
    for i, p in enumerate(plans):
        ref[i], valid[i] = recording.reference_targets(p.t, p.episode, horizon, dt)
    result = EvalResult(robot, recording, cfg, runs, ref, valid, np.array([p.t for p in plans]),
                        np.array([p.episode for p in plans]), skipped)
    for name, run in runs.items():
        h = horizons[name]
        pred = np.stack(run.predictions)
        m = M.error_metrics(robot, pred, ref[:, :h], valid[:, :h])
        m["checkpoint"] = run.checkpoint
        m["latency_ms"] = M.latency_stats(run.latencies)
        m["smoothness"] = M.smoothness([
            M.played_stream(run.chunks(robot, e), robot.dof, robot.control_rate, cfg.aggregation,
                            cfg.crossfade_time, cfg.replan_fraction) for e in range(len(recording.episodes))])
        result.metrics[name] = m
    if recording.chunks:
        result.metrics["recorded"] = recorded_chunk_metrics(recording, cfg)
    t_end = time.perf_counter()
    result.timing = {"total": t_end - t_start, "predict_chunk": predict_time,
                     "inference_loop": t_infer_end - t_start, "metrics": t_end - t_infer_end,
                     "overhead_fraction": (t_end - t_start - predict_time) / predict_time if predict_time else None}
    return result


def recorded_chunk_metrics(recording: Recording, cfg: EvalConfig) -> dict:
    """The same metrics for the chunks recorded in the bag (what the live policy produced)."""
    robot = recording.robot
    chunks = [c for c in recording.chunks if recording.episode_at(c.stamp) >= 0]
    if not chunks:
        return {"note": "no recorded chunk inside an episode"}
    horizon = max(c.horizon for c in chunks)
    pred = np.full((len(chunks), horizon, robot.dof), np.nan)
    ref = np.full_like(pred, np.nan)
    valid = np.zeros((len(chunks), horizon), bool)
    for i, c in enumerate(chunks):
        ep = recording.episode_at(c.stamp)
        pred[i, :c.horizon] = c.actions
        r, v = recording.reference_targets(c.stamp, ep, c.horizon, c.step_period)
        ref[i, :c.horizon], valid[i, :c.horizon] = r, v
    m = M.error_metrics(robot, pred, ref, valid)
    m["checkpoint"] = ", ".join(sorted({c.model_variant for c in chunks if c.model_variant})) or "recorded"
    m["latency_ms"] = M.latency_stats([c.inference_latency for c in chunks if c.inference_latency > 0])
    m["smoothness"] = M.smoothness([
        M.played_stream([c for c in chunks if recording.episode_at(c.stamp) == e], robot.dof, robot.control_rate,
                        cfg.aggregation, cfg.crossfade_time, 0.0) for e in range(len(recording.episodes))])
    return m


def load_runtimes(robot: RobotSpec, models: Sequence[str], checkpoints: Mapping[str, str] | None = None,
                  device: str | None = None, num_threads: int | None = None) -> dict[str, Any]:
    """Load each model through the policy runtime (checked against the robot)."""
    from ..policy.runtime import load_runtime
    from ..policy.variants import load_variant

    checkpoints = dict(checkpoints or {})
    unknown = set(checkpoints) - set(models)
    if unknown:
        raise ValueError(f"--checkpoint names {sorted(unknown)} match no --model ({list(models)})")
    out = {}
    for name in models:
        if name in out:
            raise ValueError(f"model '{name}' is given twice")
        variant = load_variant(name, checkpoint_override=checkpoints.get(name) or None, device_override=device or None)
        out[name] = load_runtime(variant, robot, num_threads=num_threads, warmup=True)
    return out
