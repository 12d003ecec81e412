"""Evaluation outputs: metrics.json, metrics.csv (long) and summary.csv (one row per model),
PNG plots and one self-contained report.html (plots embedded as base64)."""
from __future__ import annotations

import base64
import csv
import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics as M
from .evaluate import EvalResult

PLOTS = ("trajectories", "error_vs_horizon", "latency", "models")


def _clean(x: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy -> Python."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_json(result: EvalResult, path: Path) -> None:
    path.write_text(json.dumps(_clean(result.summary()), indent=2) + "\n")


def summary_rows(result: EvalResult) -> list[dict[str, Any]]:
    rows = []
    for name, m in result.metrics.items():
        lat = m.get("latency_ms", {})
        rows.append({
            "model": name, "checkpoint": m.get("checkpoint", ""), "observations": m.get("observations"),
            "valid_steps": m.get("valid_steps"), "l1": m.get("l1"), "mse": m.get("mse"),
            "final_step_l1": (m.get("final_step") or {}).get("l1"),
            "gripper_agreement": (m.get("gripper_agreement") or {}).get("mean"),
            "latency_median_ms": lat.get("median"), "latency_p90_ms": lat.get("p90"),
            "latency_max_ms": lat.get("max"),
            "boundary_step_ratio": (m.get("smoothness") or {}).get("boundary_step_ratio"),
        })
    return rows


def write_csv(result: EvalResult, out: Path) -> None:
    rows = summary_rows(result)
    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(_clean(rows))
    with open(out / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "metric", "key", "value"])
        for name, m in result.metrics.items():
            for joint, v in (m.get("per_joint") or {}).items():
                w.writerow([name, "l1", joint, v["l1"]])
                w.writerow([name, "mse", joint, v["mse"]])
            for metric in ("l1", "mse"):
                for k, v in enumerate((m.get("per_step") or {}).get(metric, [])):
                    w.writerow([name, f"{metric}_step", k, _clean(v)])
            for joint, v in ((m.get("final_step") or {}).get("per_joint_l1") or {}).items():
                w.writerow([name, "final_step_l1", joint, v])
            for g, v in ((m.get("gripper_agreement") or {}).get("per_gripper") or {}).items():
                w.writerow([name, "gripper_agreement", g, v])
            for k, v in (m.get("latency_ms") or {}).items():
                w.writerow([name, "latency_ms", k, v])
            run = result.runs.get(name)
            if run is not None:
                for i, v in enumerate(run.latencies):
                    w.writerow([name, "latency_ms_sample", i, v * 1e3])


# -- plots --------------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_trajectories(result: EvalResult, path: Path, episode: int = 0) -> None:
    """Recorded positions vs the stream each model's chunks would command, per joint."""
    plt = _plt()
    rec, robot = result.recording, result.robot
    ep = rec.episodes[episode]
    ref = rec.reference
    sel = (ref.t >= ep.start) & (ref.t <= ep.end)
    dof = robot.dof
    cols = 2 if dof > 3 else 1
    rows = int(math.ceil(dof / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 2.0 * rows + 0.8), sharex=True, squeeze=False)
    t0 = ep.start
    streams = {}
    for name, run in result.runs.items():
        streams[name] = M.played_stream(run.chunks(robot, episode), dof, robot.control_rate,
                                        result.config.aggregation, result.config.crossfade_time,
                                        result.config.replan_fraction)
    for j in range(dof):
        ax = axes[j // cols][j % cols]
        ax.plot(ref.t[sel] - t0, ref.q[sel, j], color="black", lw=2.0, label=f"recorded ({rec.reference_name})")
        for name, s in streams.items():
            if s is not None:
                ax.plot(s.t - t0, s.q[:, j], lw=1.2, label=f"{name} (played chunks)")
        ax.set_title(robot.joint_names[j], fontsize=9)
        ax.set_xlim(0, max(ep.end - t0, 1e-3))
        ax.set_ylabel("rad")
        ax.grid(alpha=0.3)
    for j in range(dof, rows * cols):
        axes[j // cols][j % cols].axis("off")
    for ax in axes[-1]:
        ax.set_xlabel(f"s since episode start ('{ep.instruction[:40]}')")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(4, len(labels)), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / (2.0 * rows + 0.8)))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_error_vs_horizon(result: EvalResult, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    dt = 1.0 / result.robot.policy_fps
    for name, m in result.metrics.items():
        l1 = (m.get("per_step") or {}).get("l1")
        if l1:
            steps = np.arange(1, len(l1) + 1)
            ax.plot(steps * dt, np.array(l1, dtype=float), marker=".", label=name)
    _finish_single(plt, fig, ax, path, "time after the observation (s)", "L1 error (rad, mean over joints)",
                   "error vs horizon")


def _finish_single(plt, fig, ax, path: Path, xlabel: str, ylabel: str, title: str) -> None:
    """Label, grid and legend a one-axes plot, write it to ``path`` and free it."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_latency(result: EvalResult, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, run in result.runs.items():
        if run.latencies:
            ms = np.array(run.latencies) * 1e3
            ax.hist(ms, bins=min(40, max(5, len(ms) // 3)), alpha=0.6,
                    label=f"{name} (median {np.median(ms):.1f} ms)")
    _finish_single(plt, fig, ax, path, "predict_chunk latency (ms)", "chunks", "inference latency")


def plot_models(result: EvalResult, path: Path) -> None:
    """Models side by side: per-joint L1 and the headline numbers."""
    plt = _plt()
    names = list(result.metrics)
    joints = result.robot.joint_names
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [2, 1.3]})
    width = 0.8 / max(1, len(names))
    x = np.arange(len(joints))
    for k, name in enumerate(names):
        pj = result.metrics[name].get("per_joint") or {}
        vals = [pj.get(j, {}).get("l1", np.nan) for j in joints]
        a1.bar(x + k * width - 0.4 + width / 2, vals, width, label=name)
    a1.set_xticks(x, joints, rotation=30, ha="right", fontsize=8)
    a1.set_ylabel("L1 (rad)")
    a1.set_title("per-joint L1")
    a1.legend(fontsize=8)
    a1.grid(alpha=0.3, axis="y")
    headline = ["l1", "final_step_l1", "gripper_agreement", "boundary_step_ratio"]
    rows = {r["model"]: r for r in summary_rows(result)}
    x2 = np.arange(len(headline))
    for k, name in enumerate(names):
        vals = [rows[name].get(h) for h in headline]
        a2.bar(x2 + k * width - 0.4 + width / 2, [np.nan if v is None else v for v in vals], width, label=name)
    a2.set_xticks(x2, ["L1", "final L1", "gripper agree", "boundary ratio"], fontsize=8)
    a2.set_title("summary")
    a2.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_plots(result: EvalResult, out: Path) -> dict[str, Path]:
    paths = {name: out / f"{name}.png" for name in PLOTS}
    plot_trajectories(result, paths["trajectories"])
    plot_error_vs_horizon(result, paths["error_vs_horizon"])
    plot_latency(result, paths["latency"])
    plot_models(result, paths["models"])
    return paths


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return html.escape(str(v))


def write_html(result: EvalResult, path: Path, plots: dict[str, Path]) -> None:
    s = result.summary()
    rows = summary_rows(result)
    cols = list(rows[0])
    table = "<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>\n" + "\n".join(
        "<tr>" + "".join(f"<td>{_fmt(r[c])}</td>" for c in cols) + "</tr>" for r in rows)
    joints = result.robot.joint_names
    jt = "<tr><th>model</th>" + "".join(f"<th>{html.escape(j)}</th>" for j in joints) + "</tr>\n"
    for name, m in result.metrics.items():
        pj = m.get("per_joint") or {}
        jt += f"<tr><td>{html.escape(name)}</td>" + "".join(
            f"<td>{_fmt(pj.get(j, {}).get('l1'))} / {_fmt(pj.get(j, {}).get('mse'))}</td>" for j in joints) + "</tr>\n"
    imgs = ""
    titles = {"trajectories": "Predicted (played) versus recorded trajectories, first episode",
              "error_vs_horizon": "Error versus horizon", "latency": "Inference latency",
              "models": "Models side by side"}
    for name, p in plots.items():
        data = base64.b64encode(Path(p).read_bytes()).decode("ascii")
        imgs += f"<h2>{titles.get(name, name)}</h2>\n<img alt='{name}' src='data:image/png;base64,{data}'>\n"
    episodes = "".join(f"<li>{e['start']:.3f}–{e['end']:.3f} s: {html.escape(e['instruction'])}</li>"
                       for e in s["episodes"])
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in s["notes"] + [
        f"skipped frames: {k}: {v}" for k, v in s["skipped_frames"].items()])
    timing = s["timing_s"]
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>vla_ros evaluation: {html.escape(Path(s['source']).name)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #bbb;padding:3px 8px;font-size:13px;text-align:right}}th{{background:#eee}}
img{{max-width:100%;border:1px solid #ddd}}</style></head><body>
<h1>vla_ros offline evaluation</h1>
<p>Recording <code>{html.escape(s['source'])}</code> ({s['kind']}), robot <b>{html.escape(s['robot'])}</b>;
{s['observations']} observations (every {s['every']}), flow-matching seed {s['seed']} + observation index;
predictions compared with the recorded <b>{s['compared_with']}</b> at each chunk step. Errors in radians.
Evaluation took {timing.get('total', 0):.2f} s, of which {timing.get('predict_chunk', 0):.2f} s in predict_chunk.</p>
<h2>Summary</h2><table>{table}</table>
<h2>Per-joint L1 / MSE</h2><table>{jt}</table>
<h2>Episodes</h2><ul>{episodes}</ul>
{'<h2>Notes</h2><ul>' + notes + '</ul>' if notes else ''}
{imgs}
</body></html>
"""
    path.write_text(doc)


def write_report(result: EvalResult, out: str | Path, plots: bool = True) -> dict[str, Path]:
    """Write every output into ``out`` (created); returns name -> path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {"json": out / "metrics.json", "csv": out / "metrics.csv", "summary": out / "summary.csv"}
    write_json(result, paths["json"])
    write_csv(result, out)
    pl = write_plots(result, out) if plots else {}
    paths.update(pl)
    paths["html"] = out / "report.html"
    write_html(result, paths["html"], pl)
    return paths
