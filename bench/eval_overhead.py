#!/usr/bin/env python3
"""Offline evaluation overhead beyond the model's own inference time (tiny model).

Writes a mock SO-100 session (two 640x480 rgb8 cameras at 30 Hz, joint states and commands at
50 Hz, ``--seconds`` long) as an mcap bag, then runs ``vla_ros.eval.evaluate`` on every
observation with the tiny model, ``--repeat`` times. In each run it times the whole evaluation
(reading the bag, decoding the frames, building observations, inference, comparing, metrics and
the played-stream smoothness) and, inside the same run, the sum of the ``predict_chunk`` calls.
overhead = (evaluation - predict_chunk sum) / predict_chunk sum; goal <= 10 % (median of runs).
Writing the report (JSON, CSV, plots, HTML) is timed separately: it happens once per evaluation.

    .venv/bin/python bench/eval_overhead.py [--seconds 4] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GOAL = 0.10


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--every", type=int, default=1)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from vla_ros.eval.evaluate import EvalConfig, evaluate, load_runtimes
    from vla_ros.eval.recording import from_bag
    from vla_ros.eval.report import write_report
    from vla_ros.eval.synthetic import write_session
    from vla_ros.robots import load_robot

    robot = load_robot("so100")
    root = Path(tempfile.mkdtemp(prefix="vla_ros_eval_overhead_"))
    try:
        bag = write_session(root / "session", robot, args.seconds, image_size=(640, 480)).path
        runtimes = load_runtimes(robot, ["tiny"])
        print(f"tiny model, {runtimes['tiny'].num_threads} torch thread(s); session {args.seconds:.0f} s, "
              f"2 cameras 640x480 rgb8, mcap")
        overheads, totals, predicts, n_obs = [], [], [], 0
        result = None
        for k in range(args.repeat):
            t0 = time.perf_counter()
            rec = from_bag(bag, robot)  # the first read of the bag counts too
            result = evaluate(rec, runtimes, EvalConfig(every=args.every, progress=False))
            total = time.perf_counter() - t0
            predict = result.timing["predict_chunk"]
            n_obs = len(result.plan_times)
            overheads.append((total - predict) / predict)
            totals.append(total)
            predicts.append(predict)
            print(f"  run {k + 1}: {n_obs} observations, evaluation {total:.3f} s, predict_chunk sum {predict:.3f} s "
                  f"({predict / n_obs * 1e3:.1f} ms each), overhead {(total - predict) * 1e3 / n_obs:.2f} ms per "
                  f"observation = {overheads[-1] * 100:.1f} %")
        t0 = time.perf_counter()
        write_report(result, root / "report")
        t_report = time.perf_counter() - t0
        med = float(np.median(overheads))
        passed = med <= GOAL
        print(f"median overhead {med * 100:.1f} % of the model's own time "
              f"(evaluation {np.median(totals):.3f} s vs predict_chunk {np.median(predicts):.3f} s); "
              f"report writing (plots, HTML) once: {t_report:.2f} s")
        print(f"goal <= {GOAL * 100:.0f} %: {'PASS' if passed else 'FAIL'}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
