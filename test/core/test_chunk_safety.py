import numpy as np

from vla_ros.core.chunk import ActionChunk
import pytest

from vla_ros.core.safety import SafetyLimits, SafetyState, SoftStart

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


def test_acceleration_limit_ramps_speed_and_stops_without_overshoot():
    lim = SafetyLimits(np.array([-5.0]), np.array([5.0]), np.array([2.0]), np.array([10.0]))
    q, v, dt, out = np.zeros(1), np.zeros(1), 0.01, []
    for _ in range(200):
        nxt = lim.apply(np.array([1.0]), q, dt, v)
        v, q = (nxt - q) / dt, nxt
        out.append(q[0])
    speed = np.diff(np.concatenate([[0.0], out])) / dt
    assert np.all(np.abs(np.diff(np.concatenate([[0.0], speed]))) <= 10.0 * dt + 1e-9)  # |dv| <= a dt
    assert np.max(out) <= 1.0 + 1e-12 and out[-1] == pytest.approx(1.0)
    assert lim.counts["acceleration_clamped"] > 0


def test_step_cap_holds_when_a_period_comes_late():
    lim = SafetyLimits(np.array([-5.0]), np.array([5.0]), np.array([2.0]), max_step=np.array([0.05]))
    out = lim.apply(np.array([1.0]), np.zeros(1), dt=0.5)  # velocity alone would allow 1.0 rad
    assert out[0] == pytest.approx(0.05) and lim.counts["step_clamped"] == 1


def test_soft_start_scales_velocity():
    lim = SafetyLimits(np.array([-5.0]), np.array([5.0]), np.array([2.0]))
    ss = SoftStart(1.0, initial=0.1)
    ss.restart(10.0)
    assert ss.scale(10.0) == pytest.approx(0.1) and ss.scale(10.5) == pytest.approx(0.55) and ss.scale(11.0) == 1.0
    out = lim.apply(np.array([1.0]), np.zeros(1), 0.01, velocity_scale=ss.scale(10.0))
    assert out[0] == pytest.approx(0.002)


def test_chunk_jump_names_the_step_and_joint():
    lim = SafetyLimits(np.array([-5.0, -5.0]), np.array([5.0, 5.0]), np.array([2.0, 2.0]))
    a = np.array([[0.0, 0.0], [0.1, 0.0], [0.1, 0.9]])
    msg = lim.chunk_jump(a, 0.35)
    assert "between steps 1 and 2" in msg and "joint 1" in msg
    assert lim.chunk_jump(a[:2], 0.35) is None
    assert "from the commanded position" in lim.chunk_jump(a[:2], 0.35, start=np.array([1.0, 0.0]))


def test_safety_state_latches_estop_and_orders_reasons():
    s = SafetyState(enabled=True, state_timeout=0.25)
    assert "none yet" in s.hold_reason(1.0)
    s.last_state = 1.0
    assert s.hold_reason(1.1) is None
    s.estop()
    s.enable(False)
    assert s.hold_reason(1.1) == "e-stop"
    assert s.enable(True) is True and s.hold_reason(1.1) is None
    assert "stale" in s.hold_reason(2.0)
    s.policy_alive = False
    assert s.hold_reason(1.1) == "policy lost"


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="shape"):
        SafetyLimits(np.zeros(2), np.ones(2), np.ones(3))
    with pytest.raises(ValueError, match="lower < upper"):
        SafetyLimits(np.ones(1), np.zeros(1), np.ones(1))
