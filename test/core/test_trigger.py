"""ReplanTrigger: when the next inference starts; and the chunking benchmark's simulation core."""
import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from vla_ros.core.chunk import ActionChunk
from vla_ros.core.player import AGGREGATIONS, DEFAULT_AGGREGATION
from vla_ros.core.trigger import ReplanTrigger

ROOT = Path(__file__).resolve().parents[2]
D = 50 / 30  # 50 steps at 30 Hz


def test_threshold_mode_ignores_latency():
    tr = ReplanTrigger("threshold", threshold=0.5)
    assert tr.due(10.0, D) == pytest.approx(10.0 + D / 2)
    for _ in range(10):
        tr.record_latency(1.2)  # slower than the half chunk left: the robot will wait
    assert tr.due(10.0, D) == pytest.approx(10.0 + D / 2)


def test_latency_mode_starts_early_enough_for_the_measured_latency():
    tr = ReplanTrigger("latency", threshold=0.5, margin=0.1)
    assert tr.expected_latency() == 0.0
    assert tr.due(10.0, D) == pytest.approx(10.0 + D / 2)  # nothing measured: the threshold
    for lat in np.linspace(0.1, 0.2, 11):
        tr.record_latency(lat)
    assert tr.due(10.0, D) == pytest.approx(10.0 + D / 2), "fast inference: the threshold rules"
    for lat in np.linspace(0.8, 1.0, 50):  # a slower model replaces the window
        tr.record_latency(lat)
    p90 = np.percentile(np.linspace(0.8, 1.0, 50), 90)
    assert tr.expected_latency() == pytest.approx(p90)
    assert tr.due(10.0, D) == pytest.approx(10.0 + D - (p90 + 0.1))
    # the chunk it triggers arrives `margin` before the current one ends, at the p90 latency
    assert tr.due(10.0, D) + p90 == pytest.approx(10.0 + D - 0.1)


def test_latency_beyond_a_chunk_means_back_to_back():
    tr = ReplanTrigger("latency", threshold=0.2)
    tr.record_latency(5.0)
    assert tr.due(10.0, D) == pytest.approx(10.0)
    chunk = ActionChunk(10.0, 1, ["a"], np.zeros((50, 1), np.float32), 1 / 30)
    assert tr.due_after(chunk) == pytest.approx(10.0)


def test_bad_measurements_are_ignored_and_bad_settings_refused():
    tr = ReplanTrigger()
    tr.record_latency(float("nan"))
    tr.record_latency(-1.0)
    assert tr.latencies == []
    with pytest.raises(ValueError, match="replan mode 'soon' is not one of latency, threshold"):
        ReplanTrigger("soon")
    with pytest.raises(ValueError, match="within 0..1"):
        ReplanTrigger(threshold=1.5)


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_chunking", ROOT / "bench" / "chunking.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("latency", [0.15, 0.8])
def test_simulated_default_is_smoother_than_weighted_average_and_never_starves(bench, latency):
    cfg = bench.SimConfig(latency=latency, duration=15.0, seed=3)
    results = bench.simulate(cfg)
    assert set(results) == set(AGGREGATIONS)
    default, wavg, latest = results[DEFAULT_AGGREGATION], results["weighted_average"], results["latest"]
    assert default.chunks >= 8 and default.merged == default.chunks - 1  # every chunk after the first overlaps
    assert default.starved_s == 0.0 and default.starved_periods == 0
    assert default.ratio < wavg.ratio < latest.ratio
    assert default.ratio < 1.6
    # per-chunk offsets are 0.02 rad per joint: the tracking error stays of that order
    assert default.rms < 0.1


def test_simulated_threshold_trigger_starves_where_latency_trigger_does_not(bench):
    cfg = bench.SimConfig(latency=0.6, duration=15.0, threshold=0.3, seed=1)
    fixed = bench.simulate(replace(cfg, trigger="threshold"), aggregations=[DEFAULT_AGGREGATION])
    aware = bench.simulate(replace(cfg, trigger="latency"), aggregations=[DEFAULT_AGGREGATION])
    # 30% of a 1.67 s chunk (0.5 s) is less than the 0.6 s latency: the robot waits each time
    assert fixed[DEFAULT_AGGREGATION].starved_periods >= 5
    assert aware[DEFAULT_AGGREGATION].starved_s == 0.0
