import numpy as np
import pytest

from vla_ros.core.chunk import ActionChunk
from vla_ros.nodes.bridge import BridgeLogic

PERIOD = 0.02


@pytest.fixture
def logic(so100):
    lg = BridgeLogic(so100, PERIOD, start_enabled=True, aggregation="latest")
    lg.on_joint_state(so100.joint_names, so100.home, 100.0)
    return lg


def make_chunk(spec, stamp, target, steps=30, dt=1 / 30, names=None):
    actions = np.tile(np.asarray(target, dtype=np.float32), (steps, 1))
    return ActionChunk(stamp, 1, list(names or spec.joint_names), actions, dt)


def run(logic, t0, t1, state=True):
    out = []
    for t in np.arange(t0, t1, PERIOD):
        if state:
            logic.on_joint_state(logic.spec.joint_names, logic.last_cmd if logic.last_cmd is not None
                                 else logic.spec.home, t)
        out.append(logic.tick(t))
    return out


def test_nothing_is_sent_before_joint_states(so100):
    lg = BridgeLogic(so100, PERIOD, start_enabled=True)
    assert lg.tick(1.0) is None


def test_plays_chunk_within_velocity_limits(logic, so100):
    target = so100.home + 0.3
    assert logic.on_chunk(make_chunk(so100, 100.0, target), 100.0) is None
    cmds = run(logic, 100.0, 101.0)
    q = np.array([c.positions for c in cmds])
    assert not cmds[5].holding
    steps = np.abs(np.diff(q, axis=0))
    assert np.all(steps <= so100.max_velocity * PERIOD + 1e-9)
    assert np.allclose(q[-1], target, atol=1e-6)


def test_position_limits_are_enforced(logic, so100):
    logic.on_chunk(make_chunk(so100, 100.0, so100.upper + 5.0), 100.0)
    q = np.array([c.positions for c in run(logic, 100.0, 104.0)])
    assert np.all(q <= so100.upper + 1e-12)


def test_watchdog_holds_when_chunks_stop(logic, so100):
    logic.on_chunk(make_chunk(so100, 100.0, so100.home + 0.1, steps=10), 100.0)
    cmds = run(logic, 100.0, 101.0)
    assert cmds[-1].holding and cmds[-1].reason == "chunk ended"
    assert np.allclose(cmds[-1].positions, cmds[-2].positions)


@pytest.mark.parametrize("bad", ["nan", "names"])
def test_bad_chunk_is_rejected_and_bridge_holds(logic, so100, bad):
    logic.on_chunk(make_chunk(so100, 100.0, so100.home + 0.5), 100.0)
    run(logic, 100.0, 100.2)
    held = logic.last_cmd.copy()
    if bad == "nan":
        c = make_chunk(so100, 100.2, so100.home)
        c.actions[3, 2] = np.nan
    else:
        c = make_chunk(so100, 100.2, so100.home, names=[*so100.joint_names[:-1], "jaw"])
    assert logic.on_chunk(c, 100.2) is not None
    cmds = run(logic, 100.2, 100.5)
    assert all(c.holding for c in cmds) and "rejected" in cmds[-1].reason
    assert all(np.allclose(c.positions, held) for c in cmds)
    assert logic.counts["chunks_rejected"] == 1


def test_estop_latches_until_enable(logic, so100):
    logic.on_chunk(make_chunk(so100, 100.0, so100.home + 0.5), 100.0)
    run(logic, 100.0, 100.1)
    logic.on_estop(True)
    logic.on_chunk(make_chunk(so100, 100.1, so100.home + 0.5), 100.1)  # chunks keep coming
    cmds = run(logic, 100.1, 100.5)
    assert all(c.holding and c.reason == "e-stop" for c in cmds)
    logic.on_estop(False)  # releasing the e-stop topic is not enough
    assert run(logic, 100.5, 100.6)[-1].holding
    logic.on_enable(True)
    logic.on_chunk(make_chunk(so100, 100.6, so100.home + 0.5), 100.6)
    assert not run(logic, 100.6, 100.7)[-1].holding


def test_policy_lost_holds_at_once(logic, so100):
    logic.on_chunk(make_chunk(so100, 100.0, so100.home + 0.5), 100.0)
    run(logic, 100.0, 100.1)
    logic.on_policy_lost()
    cmd = logic.tick(100.1 + PERIOD)
    assert cmd.holding and cmd.reason == "policy lost"
    # a publisher that was only late (missed its lease) resumes the trajectory it sent
    logic.on_policy_regained()
    logic.on_joint_state(so100.joint_names, logic.last_cmd, 100.1 + 2 * PERIOD)
    assert not logic.tick(100.1 + 2 * PERIOD).holding


def test_stale_joint_states_hold(logic, so100):
    logic.on_chunk(make_chunk(so100, 100.0, so100.home + 0.5), 100.0)
    cmds = run(logic, 100.0, 100.6, state=False)  # last joint state at t=100.0
    assert not cmds[2].holding
    assert cmds[-1].holding and "stale" in cmds[-1].reason


def test_disabled_bridge_does_not_move(so100):
    lg = BridgeLogic(so100, PERIOD, start_enabled=False)
    lg.on_joint_state(so100.joint_names, so100.home, 100.0)
    lg.on_chunk(make_chunk(so100, 100.0, so100.home + 0.5), 100.0)
    cmds = run(lg, 100.0, 100.3)
    assert all(c.holding and c.reason == "disabled" for c in cmds)
    assert np.allclose(cmds[-1].positions, so100.home)


def test_chunk_jump_beyond_the_cap_is_rejected(so100):
    lg = BridgeLogic(so100, PERIOD, start_enabled=True, aggregation="latest", max_chunk_step=0.2)
    lg.on_joint_state(so100.joint_names, so100.home, 100.0)
    c = make_chunk(so100, 100.0, so100.home)
    c.actions[10:, 1] += 0.5  # a 0.5 rad jump between steps 9 and 10
    problem = lg.on_chunk(c, 100.0)
    assert "between steps 9 and 10" in problem and "joint 1" in problem
    assert lg.counts["chunks_rejected_step"] == 1 and lg.counts["chunks_rejected"] == 1
    cmds = run(lg, 100.0, 100.3)
    assert all(c.holding for c in cmds) and np.allclose(cmds[-1].positions, so100.home)
    far = make_chunk(so100, 100.3, so100.home + 0.5)  # smooth, but far from the commanded pose
    assert "from the commanded position" in lg.on_chunk(far, 100.3)


def test_joint_states_with_wrong_names_or_nan_are_counted(logic, so100):
    assert "missing" in logic.on_joint_state(["a", "b"], [0.0, 0.0], 100.1)
    bad = np.array(so100.home, dtype=float)
    bad[2] = np.nan
    assert "non-finite" in logic.on_joint_state(so100.joint_names, bad, 100.1)
    assert logic.counts["states_rejected"] == 2
    assert np.allclose(logic.measured, so100.home)


def test_every_command_respects_the_step_cap_and_soft_start(so100):
    lg = BridgeLogic(so100, PERIOD, start_enabled=True, aggregation="latest", soft_start_time=1.0)
    lg.on_joint_state(so100.joint_names, so100.home, 100.0)
    lg.on_chunk(make_chunk(so100, 100.0, np.clip(so100.home + 1.0, so100.lower, so100.upper), steps=90), 100.0)
    q = np.array([c.positions for c in run(lg, 100.0, 102.0)])
    steps = np.abs(np.diff(q, axis=0))
    assert np.all(steps <= so100.max_step + 1e-12)
    # soft start: the first 0.2 s move at most ~28% of the velocity limit
    assert np.all(steps[:10] <= 0.3 * so100.max_velocity * PERIOD + 1e-9)
    assert np.max(steps[-30:]) < np.max(steps)  # and later faster


def test_motion_after_estop_restarts_from_the_measured_pose(logic, so100):
    logic.on_chunk(make_chunk(so100, 100.0, so100.home + 0.3), 100.0)
    run(logic, 100.0, 100.2)
    logic.on_estop(True)
    moved = so100.home + 0.1  # the arm was pushed while e-stopped
    for t in np.arange(100.2, 100.4, PERIOD):
        logic.on_joint_state(so100.joint_names, moved, t)
        assert logic.tick(t).reason == "e-stop"
    assert logic.counts["chunks_ignored_estop"] == 0
    logic.on_chunk(make_chunk(so100, 100.4, so100.home + 0.3), 100.4)
    assert logic.counts["chunks_ignored_estop"] == 1
    logic.on_enable(True)
    logic.on_chunk(make_chunk(so100, 100.4, so100.home + 0.3), 100.4)
    logic.on_joint_state(so100.joint_names, moved, 100.4)
    first = logic.tick(100.4 + PERIOD)
    assert not first.holding
    assert np.all(np.abs(first.positions - moved) <= so100.max_step)  # from the measured pose, no jump
    assert logic.mode() == "running"
