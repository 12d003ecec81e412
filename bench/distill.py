#!/usr/bin/env python3
"""Shallow-pi distillation figures, measured in one run (offline, data generated here).

1. Latency at SmolVLA's real architecture sizes (random weights; ``TinyPolicyConfig.smolvla_base``,
   robot so100, two 640x480 cameras): the teacher (16 VLM + 16 expert layers, 12 vision layers,
   512x512 images) and students made from it by the distillation's own initialisation
   (``plan_student`` / ``build_student``): 16 -> ``--vlm-layers`` layers with the whole vision
   tower, and the same with a reduced vision tower (``--vision-layers``, ``--image-size``). Each
   runs through ``PolicyRuntime.predict_chunk`` (preprocess, 10 flow steps, postprocess), rounds
   interleaved (teacher, students, teacher, ...), after a warm-up. Reported: medians, the
   student/teacher ratio; goal <= 0.45.
2. Fidelity at tiny sizes: a tiny teacher (4 layers) is fine-tuned (flow) on a synthetic
   LeRobotDataset; two students with the teacher's layers [0, 3] are trained for the same steps,
   batches, noise and learning rate, one distilled (ground truth + teacher velocity + attention),
   one on the ground-truth loss alone. On held-out episodes (another synthetic dataset), each
   predicts chunks from the same noise as the teacher; reported: mean absolute difference to the
   teacher's chunk (normalized action units). Goal: distilled < ground truth only.

No figure is asserted anywhere; timings on a shared CPU are noisy.

    .venv/bin/python bench/distill.py [--rounds 5] [--vlm-layers 4] [--vision-layers 6]
        [--image-size 256] [--steps 60] [--plot distill.png] [--skip-latency] [--skip-fidelity]
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GOAL_RATIO = 0.45


def _runtime_for(policy, loaded, name: str, threads: int):
    from vla_ros.policy.loading import LoadedPolicy
    from vla_ros.policy.runtime import PolicyRuntime

    return PolicyRuntime(LoadedPolicy(policy, loaded.preprocessor, loaded.postprocessor, loaded.checkpoint_dir,
                                      "cpu", "float32"), variant=name, num_threads=threads)


def latency(args, dims) -> list[dict]:
    """Median predict_chunk latency of the full-size teacher and its students."""
    import torch

    from vla_ros.policy.loading import load_policy
    from vla_ros.policy.runtime import default_num_threads
    from vla_ros.policy.tiny import ensure_full_size_checkpoint
    from vla_ros.train.distill import parameter_counts
    from vla_ros.train.student import build_student, plan_student

    threads = args.threads or default_num_threads()
    print(f"[1] latency at SmolVLA's real sizes (random weights), CPU, {threads} torch thread(s)")
    t0 = time.perf_counter()
    teacher_dir = ensure_full_size_checkpoint(dims)
    loaded = load_policy(teacher_dir, device="cpu", dtype="float32")
    teacher = loaded.policy
    print(f"    teacher {teacher_dir.name} loaded in {time.perf_counter() - t0:.0f} s")
    layouts = [("teacher", None), (f"student {args.vlm_layers} layers", dict(vision_layers=None, image_size=None)),
               (f"student {args.vlm_layers} layers + vision {args.vision_layers}L {args.image_size}px",
                dict(vision_layers=args.vision_layers, image_size=args.image_size))]
    models = []
    for i, (name, layout) in enumerate(layouts):
        if layout is None:
            policy, plan = teacher, None
        else:
            plan = plan_student(teacher, args.vlm_layers, None, **layout)
            with tempfile.TemporaryDirectory(prefix="vla_ros_bench_distill_") as work:
                policy = build_student(teacher, plan, Path(teacher.config.vlm_model_name), Path(work) / "backbone")
            policy.eval()
        models.append({"name": name, "plan": plan, "runtime": _runtime_for(policy, loaded, name, threads),
                       "params": parameter_counts(policy), "times": []})
    rng = np.random.default_rng(0)
    images = {k: rng.integers(0, 255, (dims.image_shape[1], dims.image_shape[2], 3), dtype=np.uint8)
              for k in dims.image_keys}
    state = np.zeros(dims.state_dim, np.float32)
    for m in models:  # warm-up
        m["runtime"].predict_chunk(images, state, "pick up the red cube", seed=0)
    from tqdm import tqdm

    for _ in tqdm(range(args.rounds), desc="latency rounds", unit="round"):
        for m in models:
            m["runtime"].predict_chunk(images, state, "pick up the red cube", seed=0)
            m["times"].append(m["runtime"].last_timing["total"])
    base = float(np.median(models[0]["times"]))
    rows = []
    print(f"    {'model':<44} {'params':>8} {'median':>9} {'ratio':>6}")
    for m in models:
        med = float(np.median(m["times"]))
        ratio = med / base
        verdict = "" if m["plan"] is None else ("PASS" if ratio <= GOAL_RATIO else "FAIL")
        print(f"    {m['name']:<44} {m['params']['total'] / 1e6:7.1f}M {med * 1e3:8.0f}ms {ratio:6.3f} {verdict}")
        rows.append({"name": m["name"], "median_s": med, "ratio": ratio, "verdict": verdict,
                     "times": m["times"], "params": m["params"]})
    print(f"    goal: student/teacher <= {GOAL_RATIO} (Shallow-pi reports > 2x speed-up); "
          f"{args.rounds} interleaved rounds")
    del models, teacher, loaded
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return rows


def fidelity(args, dims, work: Path) -> dict:
    """Held-out action error against the teacher: distilled student vs ground-truth-only student."""
    import torch

    from vla_ros.policy.loading import load_policy
    from vla_ros.policy.tiny import TinyPolicyConfig, ensure_tiny_checkpoint
    from vla_ros.train.data import open_dataset
    from vla_ros.train.distill import distill
    from vla_ros.train.finetune import finetune
    from vla_ros.train.loop import RunOptions
    from vla_ros.train.objectives import DistillWeights
    from vla_ros.train.synthetic import write_synthetic_dataset

    print(f"[2] fidelity at tiny sizes: {args.steps} steps per student, batch {args.batch_size}")
    train_ds = work / "train"
    held_ds = work / "held_out"
    small = dict(image_hw=(48, 64), frames=15)
    write_synthetic_dataset(train_ds, dims, episodes=8, seed=0, **small)
    write_synthetic_dataset(held_ds, dims, episodes=3, seed=100, **small)
    init = ensure_tiny_checkpoint(dims, TinyPolicyConfig(text_layers=4, chunk_size=10, num_steps=10),
                                  root=work / "models")
    common = dict(batch_size=args.batch_size, lr=args.lr, seed=0, progress=not args.quiet)
    teacher = finetune(train_ds, "flow", RunOptions(work / "teacher", steps=args.teacher_steps, **common),
                       init=str(init), device="cpu")
    runs = {}
    for name, weights in (("distilled", DistillWeights()), ("ground truth only", DistillWeights(1.0, 0.0, 0.0))):
        result, plan = distill(str(teacher.model_dir), train_ds,
                               RunOptions(work / name.replace(" ", "_"), steps=args.steps, **common),
                               vlm_layers=2, weights=weights, device="cpu")
        runs[name] = result

    t = load_policy(teacher.model_dir, device="cpu", dtype="float32")
    students = {name: load_policy(r.model_dir, device="cpu", dtype="float32").policy for name, r in runs.items()}
    ds = open_dataset(held_ds, t.config)
    loader = torch.utils.data.DataLoader(ds, batch_size=16, shuffle=False)
    errors = {name: [] for name in students}
    g = torch.Generator().manual_seed(123)
    with torch.inference_mode():
        for raw in loader:
            batch = t.preprocessor(raw)
            n = batch["observation.state"].shape[0]
            noise = torch.randn(n, t.config.chunk_size, t.config.max_action_dim, generator=g)
            ref = t.policy.predict_action_chunk(dict(batch), noise=noise.clone())
            for name, s in students.items():
                out = s.predict_action_chunk(dict(batch), noise=noise.clone())
                errors[name].append((out - ref).abs().mean(dim=(1, 2)))
    mae = {name: float(torch.cat(v).mean()) for name, v in errors.items()}
    verdict = "PASS" if mae["distilled"] < mae["ground truth only"] else "FAIL"
    print(f"    held-out frames: {len(ds)}; student = teacher layers {plan.vlm_layers} of 4")
    for name, v in mae.items():
        print(f"    {name:<20} action error vs teacher (MAE, normalized units) {v:.4f}")
    print(f"    distilled / ground truth only = {mae['distilled'] / mae['ground truth only']:.3f}  {verdict}")
    return {"mae": mae, "verdict": verdict, "runs": runs, "teacher": teacher}


def plot(path: Path, lat: list[dict] | None, fid: dict | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in (lat, fid) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.2), squeeze=False)
    axes = list(axes[0])
    if lat:
        ax = axes.pop(0)
        names = [r["name"].replace(" + ", "\n+ ") for r in lat]
        meds = [r["median_s"] * 1e3 for r in lat]
        bars = ax.bar(range(len(lat)), meds, color=["#777"] + ["#2a7"] * (len(lat) - 1))
        for b, r in zip(bars, lat):
            ax.text(b.get_x() + b.get_width() / 2, b.get_height(), f"{r['ratio']:.2f}x", ha="center", va="bottom")
        ax.set_xticks(range(len(lat)), names, fontsize=8)
        ax.set_ylabel("median predict_chunk latency [ms]")
        ax.set_title("SmolVLA real sizes, CPU (ratio to teacher)")
    if fid:
        ax = axes.pop(0)
        for name, r in fid["runs"].items():
            steps = [row["step"] for row in r.losses]
            ax.plot(steps, [row["gt"] for row in r.losses], label=f"{name}: ground-truth term", lw=1)
            if name == "distilled":
                ax.plot(steps, [row["velocity"] for row in r.losses], label="distilled: velocity term", lw=1)
                ax.plot(steps, [row["attention"] for row in r.losses], label="distilled: attention term", lw=1)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title("tiny students: loss terms; held-out MAE " + ", ".join(
            f"{k} {v:.3f}" for k, v in fid["mae"].items()), fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5, help="timed latency rounds per model")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: the policy node's default)")
    p.add_argument("--vlm-layers", type=int, default=4)
    p.add_argument("--vision-layers", type=int, default=6)
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--teacher-steps", type=int, default=60)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--plot", type=Path, default=None, help="write a PNG (latency bars, loss curves)")
    p.add_argument("--skip-latency", action="store_true")
    p.add_argument("--skip-fidelity", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bars for the training runs")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from vla_ros.policy import RobotDims
    from vla_ros.robots import load_robot

    dims = RobotDims.from_robot_spec(load_robot("so100"))
    lat = None if args.skip_latency else latency(args, dims)
    fid = None
    if not args.skip_fidelity:
        with tempfile.TemporaryDirectory(prefix="vla_ros_bench_distill_") as work:
            fid = fidelity(args, dims, Path(work))
            if args.plot:
                plot(args.plot, lat, fid)
    elif args.plot:
        plot(args.plot, lat, None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
