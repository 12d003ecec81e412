#!/usr/bin/env python3
"""Asynchronous chunk execution in simulated time: smoothness, tracking and starvation of every
aggregation, for inference latencies 100..800 ms.

The scheduler under test is the product's own: ``vla_ros.core.trigger.ReplanTrigger`` (when the
policy node starts the next inference) and ``vla_ros.core.player.ChunkPlayer`` (how the bridge
joins a new chunk to the one playing). Only the policy and the clock are simulated, discretely
(no sleeping):

- The reference is a smooth closed curve in joint space (6 joints: three circles in joint pairs,
  period 4 s) moving at constant speed, so every step of a perfect follower has the same size and
  a boundary step ratio above 1 is a chunking artefact.
- The policy runs one inference at a time, as the node's worker does. It observes at the joint
  state rate (50 Hz) once the trigger says the next inference is due and the previous one has
  finished; the chunk (50 steps at 30 Hz, stamped with the observation time) arrives after the
  latency (``--latencies``, each with uniform jitter of +-``--jitter``). Like a real policy,
  each chunk is the reference from its observation time plus a random per-chunk offset
  (``--offset``, per joint) and small per-step noise (``--noise``).
- The bridge's control loop samples the player at ``--control-rate`` (50 Hz; 30 Hz also works);
  a chunk joins the player when it arrives, from the position being commanded; a tick with
  nothing to play holds the last command (starvation).

For each latency and aggregation it reports, per trigger mode (``latency``: the node's default,
``threshold``: LeRobot's ``chunk_size_threshold`` alone):
- the boundary step ratio (``vla_ros.core.smoothness.boundary_step_ratio``): largest command step
  from a chunk's arrival to the end of its blend with the previous one (``AddResult.blend_end``),
  over the median step elsewhere;
- the tracking error: RMS distance between command and reference (rad) after the first chunk;
- starvation: control periods with nothing to play, as seconds and number of periods.
The chunk schedule of one (latency, trigger) is the same for every aggregation (same random
draws), so aggregations are compared on identical inputs.

With one inference at a time the robot cannot avoid waiting when two consecutive latencies plus
one observation period exceed the chunk duration (50 / 30 Hz = 1.667 s): the bench prints that
bound for the largest latency.

Goals (PASS/FAIL; exit status 1 if one fails), with the latency-aware trigger:
- the default aggregation's boundary ratio <= 1.5 at every latency;
- ... and <= half of weighted_average's at the same latency;
- no starvation at the largest latency (800 ms).

    .venv/bin/python bench/chunking.py [--control-rate 50] [--duration 60] [--plot chunking.png]
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vla_ros.core.chunk import ActionChunk  # noqa: E402
from vla_ros.core.player import AGGREGATIONS, DEFAULT_AGGREGATION, DEFAULT_CROSSFADE_TIME, ChunkPlayer  # noqa: E402
from vla_ros.core.smoothness import boundary_step_ratio  # noqa: E402
from vla_ros.core.trigger import TRIGGER_MODES, ReplanTrigger  # noqa: E402

JOINTS = [f"joint_{i + 1}" for i in range(6)]
T0 = 100.0  # simulated clock at the start (stamps must be > 0)


@dataclass(frozen=True)
class SimConfig:
    """One simulated run. Times in seconds, positions in radians."""

    latency: float = 0.4
    jitter: float = 0.02
    duration: float = 60.0
    control_rate: float = 50.0
    state_rate: float = 50.0
    policy_rate: float = 30.0
    horizon: int = 50
    offset: float = 0.02
    noise: float = 0.001
    trigger: str = "latency"
    threshold: float = 0.5
    margin: float = 0.1
    crossfade_time: float = DEFAULT_CROSSFADE_TIME
    amplitudes: tuple[float, ...] = (0.4, 0.3, 0.2)
    period: float = 4.0
    seed: int = 0

    @property
    def chunk_duration(self) -> float:
        return self.horizon / self.policy_rate


def reference(t: np.ndarray, cfg: SimConfig) -> np.ndarray:
    """(T, 6) constant-speed closed curve: joint pairs (2i, 2i+1) trace circles of radius A_i."""
    t = np.atleast_1d(np.asarray(t, dtype=np.float64))
    w = 2 * np.pi / cfg.period
    cols = []
    for i, a in enumerate(cfg.amplitudes):
        phase = w * (t - T0) + i * np.pi / 3
        cols += [a * np.sin(phase), a * np.cos(phase) - a]
    return np.stack(cols, axis=1)


@dataclass
class Schedule:
    """The policy side of a run: chunks in arrival order."""

    chunks: list[ActionChunk]
    arrivals: np.ndarray
    merged: int  # arrived while the previous chunk was still playing


def policy_schedule(cfg: SimConfig) -> Schedule:
    """Observation times, latencies and chunk contents, decided by the trigger (one inference at a time)."""
    rng = np.random.default_rng(cfg.seed)
    trigger = ReplanTrigger(cfg.trigger, cfg.threshold, cfg.margin)
    dt = 1.0 / cfg.policy_rate
    steps = np.arange(1, cfg.horizon + 1) * dt
    chunks, arrivals = [], []
    merged = 0
    due = free = T0
    prev_end = -np.inf
    while True:
        start = max(due, free)
        obs = T0 + math.ceil((start - T0) * cfg.state_rate - 1e-9) / cfg.state_rate  # next joint state
        if obs > T0 + cfg.duration:
            break
        latency = max(0.0, cfg.latency + rng.uniform(-cfg.jitter, cfg.jitter))
        actions = reference(obs + steps, cfg) + rng.normal(0.0, cfg.offset, len(JOINTS))
        actions += rng.normal(0.0, cfg.noise, actions.shape)
        chunk = ActionChunk(obs, len(chunks) + 1, JOINTS, actions.astype(np.float32), dt,
                            inference_latency=latency, instruction_id=1)
        arrival = obs + latency
        merged += arrival < prev_end
        prev_end = chunk.end_time
        chunks.append(chunk)
        arrivals.append(arrival)
        trigger.record_latency(arrival - obs)
        due = trigger.due_after(chunk)
        free = arrival
    return Schedule(chunks, np.asarray(arrivals), merged)


@dataclass
class Playback:
    times: np.ndarray  # control ticks after the first chunk arrived
    commands: np.ndarray  # (T, 6)
    starved: np.ndarray  # (T,) bool: nothing to play, holding
    boundary: np.ndarray  # (T-1,) bool: step inside a chunk's arrival..blend_end window
    arrivals: list[float] = field(default_factory=list)


def play(schedule: Schedule, cfg: SimConfig, aggregation: str) -> Playback:
    """The bridge's control loop over the schedule: add chunks as they arrive, sample every tick."""
    player = ChunkPlayer(len(JOINTS), aggregation, cfg.crossfade_time)
    first = schedule.arrivals[0]
    n = int(math.floor((T0 + cfg.duration + cfg.chunk_duration - first) * cfg.control_rate))
    ticks = first + np.arange(1, n + 1) / cfg.control_rate  # the first tick after the first chunk
    commands = np.zeros((n, len(JOINTS)))
    starved = np.zeros(n, bool)
    windows = []
    last = reference(first, cfg)[0]  # the robot starts on the reference
    k = 0
    for i, t in enumerate(ticks):
        while k < len(schedule.chunks) and schedule.arrivals[k] <= t:
            a = float(schedule.arrivals[k])
            res = player.add(schedule.chunks[k], a, last)
            if k > 0 and res.kept_steps:
                windows.append((a, res.blend_end))
            k += 1
        q = player.sample(t)
        if q is None:
            starved[i] = True
        else:
            last = q
        commands[i] = last
    boundary = np.zeros(n - 1, bool)
    for a, end in windows:
        boundary |= (ticks[1:] >= a) & (ticks[:-1] <= end)
    return Playback(ticks, commands, starved, boundary, [a for a, _ in windows])


@dataclass
class Result:
    ratio: float
    rms: float
    starved_s: float
    starved_periods: int
    chunks: int
    merged: int


def evaluate(pb: Playback, cfg: SimConfig, schedule: Schedule) -> Result:
    """Figures over the simulated duration, from the second chunk on (the first fades in from rest)."""
    span = (pb.times >= schedule.arrivals[min(1, len(schedule.arrivals) - 1)]) & (pb.times <= T0 + cfg.duration)
    q, times = pb.commands[span], pb.times[span]
    err = np.linalg.norm(q - reference(times, cfg), axis=1)
    starved = pb.starved[span]
    runs = int(np.count_nonzero(np.diff(np.concatenate([[0], starved.astype(int)])) == 1))
    first = int(np.argmax(span))
    boundary = pb.boundary[first:first + len(q) - 1]
    return Result(boundary_step_ratio(q, boundary), float(np.sqrt(np.mean(err ** 2))),
                  float(starved.sum() / cfg.control_rate), runs, len(schedule.chunks), schedule.merged)


def simulate(cfg: SimConfig, aggregations=AGGREGATIONS) -> dict[str, Result]:
    """Every aggregation on one schedule (the bench's core; the tests run it with a small config)."""
    schedule = policy_schedule(cfg)
    return {agg: evaluate(play(schedule, cfg, agg), cfg, schedule) for agg in aggregations}


# -- report ----------------------------------------------------------------------------------------
def plot(path: Path, cfg: SimConfig, n_boundaries: int = 3) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    schedule = policy_schedule(cfg)
    fig, axes = plt.subplots(len(AGGREGATIONS), 3, figsize=(16, 2.6 * len(AGGREGATIONS)), sharex=True,
                             squeeze=False)
    joint = 0
    top = 0.0
    for row, agg in zip(axes, AGGREGATIONS):
        pb = play(schedule, cfg, agg)
        arrivals = pb.arrivals[3:3 + n_boundaries]
        lo, hi = arrivals[0] - 0.4, arrivals[-1] + 0.6
        sel = (pb.times >= lo) & (pb.times <= hi)
        t = pb.times[sel] - T0
        fine = np.linspace(lo, hi, 600)
        row[0].plot(fine - T0, reference(fine, cfg)[:, joint], color="0.6", lw=2, label="reference")
        row[0].plot(t, pb.commands[sel, joint], ".-", ms=3, lw=1, label="commanded")
        row[1].plot(t, pb.commands[sel, joint] - reference(pb.times[sel], cfg)[:, joint], ".-", ms=3, lw=1)
        row[1].axhline(0.0, color="0.6", lw=2)
        steps = np.linalg.norm(np.diff(pb.commands, axis=0), axis=1) * cfg.control_rate
        row[2].plot(pb.times[1:][sel[1:]] - T0, steps[sel[1:]], ".-", ms=3, lw=1)
        top = max(top, float(steps[sel[1:]].max()))
        row[2].axhline(np.linalg.norm(np.diff(reference(pb.times[:2], cfg), axis=0)) * cfg.control_rate,
                       color="0.6", lw=2, label="reference")
        for ax in row:
            for a in arrivals:
                ax.axvline(a - T0, color="tab:red", lw=0.8, ls="--")
        row[0].set_ylabel(f"{agg}\n{JOINTS[joint]} (rad)")
        row[1].set_ylabel("commanded - reference (rad)")
        row[2].set_ylabel("command speed, all joints (rad/s)")
        row[0].legend(loc="best", fontsize=7)
        row[2].legend(loc="best", fontsize=7)
    for row in axes:
        row[2].set_ylim(0.0, top * 1.05)
    axes[-1][0].set_xlabel("time (s); dashed: chunk arrivals")
    axes[-1][1].set_xlabel("time (s)")
    axes[-1][2].set_xlabel("time (s)")
    fig.suptitle(f"latency {cfg.latency * 1e3:.0f} ms +- {cfg.jitter * 1e3:.0f} ms, {cfg.trigger} trigger, "
                 f"control {cfg.control_rate:g} Hz, chunk offset sd {cfg.offset} rad")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latencies", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
                        help="mean inference latencies (s)")
    parser.add_argument("--jitter", type=float, default=0.02, help="uniform latency jitter, +- s")
    parser.add_argument("--control-rate", type=float, default=50.0, help="bridge control rate (Hz)")
    parser.add_argument("--duration", type=float, default=60.0, help="simulated seconds per run")
    parser.add_argument("--offset", type=float, default=0.02, help="per-chunk offset sd per joint (rad)")
    parser.add_argument("--noise", type=float, default=0.001, help="per-step noise sd (rad)")
    parser.add_argument("--threshold", type=float, default=0.5, help="replan_threshold (fraction of a chunk)")
    parser.add_argument("--margin", type=float, default=0.1, help="replan_margin of the latency trigger (s)")
    parser.add_argument("--crossfade-time", type=float, default=DEFAULT_CROSSFADE_TIME,
                        help="the player's crossfade_time (s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", type=Path, help="write a PNG of commanded vs reference around chunk boundaries")
    parser.add_argument("--plot-latency", type=float, default=None, help="latency of the plot (default: the largest)")
    args = parser.parse_args(argv)

    base = SimConfig(jitter=args.jitter, duration=args.duration, control_rate=args.control_rate,
                     offset=args.offset, noise=args.noise, threshold=args.threshold, margin=args.margin,
                     crossfade_time=args.crossfade_time, seed=args.seed)
    print(f"chunking bench: {len(JOINTS)} joints, reference speed "
          f"{np.linalg.norm(np.diff(reference([T0, T0 + 1e-3], base), axis=0)) / 1e-3:.3f} rad/s; chunks "
          f"{base.horizon} steps at {base.policy_rate:g} Hz ({base.chunk_duration:.3f} s), observations at "
          f"{base.state_rate:g} Hz, control {base.control_rate:g} Hz; latency jitter +-{base.jitter * 1e3:.0f} ms; "
          f"chunk offset sd {base.offset} rad, step noise sd {base.noise} rad; replan_threshold {base.threshold}, "
          f"replan_margin {base.margin} s, crossfade_time {base.crossfade_time} s; {base.duration:g} s per run")
    try:
        from tqdm import tqdm
    except ImportError:  # progress is optional
        def tqdm(x, **_):
            return x

    results: dict[tuple[float, str], dict[str, Result]] = {}
    jobs = [(lat, mode) for lat in args.latencies for mode in TRIGGER_MODES]
    for lat, mode in tqdm(jobs, desc="simulating", unit="run", file=sys.stderr, leave=False):
        results[lat, mode] = simulate(replace(base, latency=lat, trigger=mode, seed=args.seed + int(lat * 1e3)))

    header = (f"{'latency':>8} {'aggregation':<20}| {'latency trigger:':<16}{'ratio':>7}{'rms err':>9}"
              f"{'starved':>9}{'periods':>8} | {'threshold trigger:':<18}{'ratio':>7}{'rms err':>9}"
              f"{'starved':>9}{'periods':>8}")
    print("\n" + header)
    print(f"{'(ms)':>8} {'':<20}| {'chunks/merged':<16}{'':>7}{'(rad)':>9}{'(s)':>9}{'':>8} | "
          f"{'chunks/merged':<18}{'':>7}{'(rad)':>9}{'(s)':>9}{'':>8}")
    for lat in args.latencies:
        for agg in AGGREGATIONS:
            cells = []
            for mode, width in (("latency", 16), ("threshold", 18)):
                r = results[lat, mode][agg]
                cells.append(f"{f'{r.chunks}/{r.merged}':<{width}}{r.ratio:7.2f}{r.rms:9.4f}"
                             f"{r.starved_s:9.2f}{r.starved_periods:8d}")
            name = agg + (" (default)" if agg == DEFAULT_AGGREGATION else "")
            print(f"{lat * 1e3:8.0f} {name:<20}| {cells[0]} | {cells[1]}")

    worst = max(args.latencies)
    bound = 2 * (worst + base.jitter) + 1.0 / base.state_rate
    print(f"\nstarvation bound at {worst * 1e3:.0f} ms: two consecutive latencies + one observation period "
          f"<= {bound:.3f} s vs chunk duration {base.chunk_duration:.3f} s "
          f"({'avoidable' if bound < base.chunk_duration else 'NOT avoidable with one inference at a time'})")

    goals = []
    lat_res = {lat: results[lat, "latency"] for lat in args.latencies}
    d_ratios = [lat_res[lat][DEFAULT_AGGREGATION].ratio for lat in args.latencies]
    goals.append((f"{DEFAULT_AGGREGATION} boundary ratio <= 1.5 at every latency (max {max(d_ratios):.2f})",
                  max(d_ratios) <= 1.5))
    halves = [lat_res[lat][DEFAULT_AGGREGATION].ratio / lat_res[lat]["weighted_average"].ratio
              for lat in args.latencies]
    goals.append((f"{DEFAULT_AGGREGATION} ratio <= 0.5 x weighted_average's at every latency (max "
                  f"{max(halves):.2f} x)", max(halves) <= 0.5))
    starved = max(r.starved_s for r in lat_res[worst].values())
    goals.append((f"no starvation at {worst * 1e3:.0f} ms with the latency-aware trigger ({starved:.2f} s)",
                  starved == 0.0))
    print()
    for text, ok in goals:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    if args.plot:
        lat = args.plot_latency if args.plot_latency is not None else worst
        plot(args.plot, replace(base, latency=lat, seed=args.seed + int(lat * 1e3)))
        print(f"plot: {args.plot}")
    return 0 if all(ok for _, ok in goals) else 1


if __name__ == "__main__":
    sys.exit(main())
