"""Offline evaluation through the policy runtime: determinism, metrics, outputs, the command."""
from __future__ import annotations

import base64
import csv
import json

import numpy as np
import pytest

from vla_ros.core.chunk import ActionChunk
from vla_ros.eval import metrics as M
from vla_ros.eval.evaluate import EvalConfig, evaluate
from vla_ros.eval.recording import from_bag
from vla_ros.eval.report import write_report


def _run(bag, robot, tiny, **kw):
    return evaluate(from_bag(bag, robot), tiny, EvalConfig(every=6, progress=False, **kw))


def test_deterministic_and_independent_of_bag_format(bags, robot, tiny):
    """Same seeds, same observations: identical chunks twice, and from a sqlite3 / bgr8 / shuffled /
    duplicated bag of the same session."""
    a = _run(bags["clean"], robot, tiny)
    b = _run(bags["clean"], robot, tiny)
    c = _run(bags["messy"], robot, tiny)
    pa, pb, pc = (np.stack(r.runs["tiny"].predictions) for r in (a, b, c))
    assert pa.shape == (15, 50, 6)
    np.testing.assert_array_equal(pa, pb)
    np.testing.assert_array_equal(pa, pc)
    other_seed = _run(bags["clean"], robot, tiny, seed=1)
    assert not np.array_equal(np.stack(other_seed.runs["tiny"].predictions), pa)


def test_metrics_of_a_model_and_of_the_recorded_chunks(bags, robot, tiny):
    res = _run(bags["clean"], robot, tiny)
    m = res.metrics["tiny"]
    assert set(m["per_joint"]) == set(robot.joint_names) and len(m["per_step"]["l1"]) == 50
    # the errors are those of the stored predictions against the recorded commands
    pred = np.stack(res.runs["tiny"].predictions)
    err = np.abs(pred - res.reference)[res.valid]
    assert m["l1"] == pytest.approx(float(err.mean()))
    assert m["final_step"]["count"] == int(res.valid[:, -1].sum()) > 0
    assert 0.0 <= m["gripper_agreement"]["mean"] <= 1.0
    assert m["latency_ms"]["count"] == 15 and m["latency_ms"]["median"] > 0
    assert m["smoothness"]["boundary_step_ratio"] > 0
    # the session's recorded chunks are its commanded targets: near-zero error, full agreement
    rec = res.metrics["recorded"]
    assert rec["l1"] < 1e-3 and rec["gripper_agreement"]["mean"] == 1.0
    assert rec["l1"] < m["l1"] / 100


def test_falls_back_to_joint_states_without_commands(bags, robot, tiny):
    res = _run(bags["no_commands"], robot, tiny)
    assert res.summary()["compared_with"] == "joint_states"
    assert res.metrics["tiny"]["valid_steps"] > 0


def test_error_metrics_known_values(robot):
    ref = np.zeros((2, 3, 6))
    pred = np.zeros((2, 3, 6))
    pred[:, :, 0] = 0.1  # shoulder_pan off by 0.1 everywhere
    pred[0, 2, 5] = robot.upper[5]  # gripper open where the recording is closed (0 < middle)
    valid = np.ones((2, 3), bool)
    valid[1, 2] = False
    m = M.error_metrics(robot, pred, ref, valid)
    assert m["per_joint"]["shoulder_pan"]["l1"] == pytest.approx(0.1)
    assert m["per_joint"]["shoulder_pan"]["mse"] == pytest.approx(0.01)
    assert m["per_joint"]["elbow_flex"]["l1"] == 0.0
    assert m["valid_steps"] == 5 and m["final_step"]["count"] == 1
    assert m["gripper_agreement"]["mean"] == pytest.approx(4 / 5)


def test_played_stream_smoothness_sees_jumps(robot):
    """Chunks that continue each other play smoothly (ratio ~1); chunks that jump do not."""
    dt, h = 1 / 30, 50

    def chunks(jump):
        out = []
        for k in range(4):
            t0 = 1.0 + k * h * dt / 2
            times = t0 + dt * np.arange(1, h + 1)
            a = np.repeat(0.5 * times[:, None], 6, axis=1) + (jump * (k % 2))
            out.append(ActionChunk(t0, k, robot.joint_names, a.astype(np.float32), dt))
        return out

    smooth = M.smoothness([M.played_stream(chunks(0.0), 6, 50.0, "latest")])["boundary_step_ratio"]
    jumpy = M.smoothness([M.played_stream(chunks(0.5), 6, 50.0, "latest")])["boundary_step_ratio"]
    faded = M.smoothness([M.played_stream(chunks(0.5), 6, 50.0, "crossfade", 0.25)])["boundary_step_ratio"]
    assert smooth < 1.5 and jumpy > 10 * smooth and faded < jumpy


def test_report_files(bags, robot, tiny, tmp_path):
    res = _run(bags["clean"], robot, tiny)
    paths = write_report(res, tmp_path / "out")
    summary = json.loads(paths["json"].read_text())
    assert set(summary["models"]) == {"tiny", "recorded"} and summary["observations"] == 15
    rows = list(csv.DictReader(paths["summary"].open()))
    assert [r["model"] for r in rows] == ["tiny", "recorded"]
    assert float(rows[0]["l1"]) == pytest.approx(res.metrics["tiny"]["l1"])
    long = list(csv.DictReader(paths["csv"].open()))
    assert sum(r["metric"] == "l1_step" and r["model"] == "tiny" for r in long) == 50
    html = paths["html"].read_text()
    for name in ("trajectories", "error_vs_horizon", "latency", "models"):
        png = paths[name].read_bytes()
        assert png.startswith(b"\x89PNG")
        assert base64.b64encode(png).decode() in html  # self-contained
    assert "<img" in html and "src='http" not in html


def test_eval_command(bags, tmp_path, capsys, monkeypatch):
    from vla_ros.cli import main

    out = tmp_path / "cli"
    code = main(["eval", str(bags["png"]), "--robot", "so100", "--model", "tiny", "--every", "10",
                 "--out", str(out), "--quiet", "--no-plots"])
    assert code == 0
    text = capsys.readouterr().out
    assert "tiny: L1" in text and "recorded: L1" in text
    assert json.loads((out / "metrics.json").read_text())["observations"] == 9
    assert main(["eval", str(bags["png"]), "--robot", "aloha", "--model", "tiny", "--out", str(out)]) == 2
    assert "lacks what robot 'aloha' needs" in capsys.readouterr().err
    assert main(["eval", str(bags["png"]), "--model", "tiny", "--checkpoint", "full=/x", "--out", str(out)]) == 2
    assert "match no --model" in capsys.readouterr().err
