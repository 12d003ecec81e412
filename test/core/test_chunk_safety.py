import numpy as np

from vla_ros.core.chunk import ActionChunk
from vla_ros.core.safety import SafetyLimits

NAMES = ["a", "b"]


def make(actions, names=NAMES, stamp=100.0, dt=0.1):
    return ActionChunk(stamp, 7, list(names), np.asarray(actions, dtype=np.float32), dt)


def test_valid_chunk_has_no_problem():
    c = make(np.zeros((5, 2)))
    assert c.problem(NAMES) is None
    assert c.horizon == 5 and c.action_dim == 2
    assert np.allclose(c.step_times(), 100.0 + 0.1 * np.arange(1, 6))


def test_problems_are_named():
    assert "non-finite" in make([[0, np.nan]]).problem(NAMES)
    assert "non-finite" in make([[np.inf, 0]]).problem(NAMES)
    msg = make([[0, 0]], names=["a", "c"]).problem(NAMES)
    assert "missing ['b']" in msg and "unexpected ['c']" in msg
    assert "order differs" in make([[0, 0]], names=["b", "a"]).problem(NAMES)
    assert "step_period" in make([[0, 0]], dt=0.0).problem(NAMES)
    assert "stamp" in make([[0, 0]], stamp=0.0).problem(NAMES)
    assert "shape" in make(np.zeros((0, 2))).problem(NAMES)


def test_limits_clamp_position_and_velocity():
    lim = SafetyLimits(np.array([-1.0, -1.0]), np.array([1.0, 1.0]), np.array([2.0, 0.5]))
    out = lim.apply(np.array([5.0, 0.0]), None, 0.02)
    assert np.allclose(out, [1.0, 0.0]) and lim.counts["position_clamped"] == 1
    out = lim.apply(np.array([0.5, 0.5]), np.array([0.0, 0.0]), 0.1)
    assert np.allclose(out, [0.2, 0.05]) and lim.counts["velocity_clamped"] == 1
