import numpy as np
import pytest

from vla_ros.core.chunk import ActionChunk
from vla_ros.core.player import ChunkPlayer


def chunk(stamp, actions, dt=0.1, cid=1, names=("a", "b")):
    return ActionChunk(stamp, cid, list(names), np.asarray(actions, dtype=np.float32), dt)


def test_aligned_by_stamp_and_interpolated():
    p = ChunkPlayer(2, "latest")
    a = np.stack([np.arange(1, 6), -np.arange(1, 6)], axis=1)  # step k -> k+1
    res = p.add(chunk(10.0, a), now=10.0, current=np.zeros(2))
    assert (res.kept_steps, res.dropped_steps) == (5, 0)
    assert np.allclose(p.sample(10.0), [0, 0])          # starts where the command is
    assert np.allclose(p.sample(10.1), [1, -1])          # step 0 at stamp + dt
    assert np.allclose(p.sample(10.15), [1.5, -1.5])     # linear in between
    assert np.allclose(p.sample(10.5), [5, -5])
    assert p.sample(10.51) is None                       # past the end: nothing to play
    assert p.remaining(10.3) == pytest.approx(0.2)


def test_steps_in_the_past_are_skipped():
    p = ChunkPlayer(1, "latest")
    res = p.add(chunk(10.0, np.arange(1, 11)[:, None], names=("a",)), now=10.35, current=np.array([3.0]))
    assert (res.kept_steps, res.dropped_steps) == (7, 3)  # steps at 10.1..10.3 are gone
    assert np.allclose(p.sample(10.35), [3.0])
    assert np.allclose(p.sample(10.4), [4.0])


def test_entirely_old_chunk_changes_nothing():
    p = ChunkPlayer(1, "latest")
    p.add(chunk(10.0, [[1.0], [2.0]], names=("a",)), now=10.0, current=np.zeros(1))
    res = p.add(chunk(5.0, [[9.0], [9.0]], names=("a",)), now=10.05, current=np.zeros(1))
    assert res.kept_steps == 0
    assert np.allclose(p.sample(10.2), [2.0])


def test_crossfade_blends_into_new_chunk_without_jump():
    old = np.zeros((20, 1))
    new = np.ones((20, 1))
    for mode in ("latest", "crossfade"):
        p = ChunkPlayer(1, mode, crossfade_time=0.5)
        p.add(chunk(0.0, old, names=("a",)), now=0.0, current=np.zeros(1))
        res = p.add(chunk(0.5, new, names=("a",)), now=0.5, current=p.sample(0.5))
        assert res.merged and not res.reset
        samples = np.array([p.sample(t)[0] for t in np.arange(0.5, 2.01, 0.02)])
        steps = np.abs(np.diff(samples))
        if mode == "latest":
            assert steps.max() > 0.15  # jumps to the new chunk within one step period
        else:
            # faded over the whole 1.5 s overlap: smoothstep's steepest slope is 1.5 / fade
            assert res.blend_end == pytest.approx(2.0)
            assert steps.max() < 1.5 / 1.5 * 0.02 * 1.1
            assert max(steps[0], steps[-1]) < 0.15 * steps.max()  # flat at both ends (C1)
        assert samples[-1] == pytest.approx(1.0)


def ramp(stamp, offset, n=50, dt=1 / 30, v=1.0):
    """A chunk on the line q = v * t, shifted by ``offset``."""
    t = stamp + dt * np.arange(1, n + 1)
    return chunk(stamp, (v * t + offset)[:, None], dt=dt, names=("a",))


def test_crossfade_spreads_an_offset_between_chunks_over_the_overlap():
    """A moving arm: each chunk is the same line with its own offset (like a real policy). The
    command keeps moving; the offset is spread, the velocity never jumps."""
    dt_ctl = 0.02
    results = {}
    for mode in ("crossfade", "latest", "weighted_average", "temporal_ensemble"):
        p = ChunkPlayer(1, mode, crossfade_time=0.5)
        p.add(ramp(1.0, 0.0), now=1.0, current=np.array([1.0]))
        ticks = np.arange(1.02, 3.25, dt_ctl)
        q = []
        for t in ticks:
            if abs(t - 1.91) < dt_ctl / 2:  # arrives between two control periods
                res = p.add(ramp(1.6, 0.05), now=1.905, current=q[-1])
                assert res.merged
            q.append(p.sample(t)[0])
        v = np.diff(q) / dt_ctl
        results[mode] = np.abs(v - 1.0)[ticks[1:] > 1.6].max()  # after the first chunk's fade-in
        assert q[-1] == pytest.approx(ticks[-1] + 0.05, abs=1e-6)  # ends on the new chunk
    # the 0.05 offset is faded over the overlap (until the first chunk's end): smoothstep's
    # steepest slope adds at most 1.5 * offset / overlap to the velocity
    overlap = (1.0 + 50 / 30) - 1.905
    assert results["crossfade"] < 1.5 * 0.05 / overlap * 1.05
    # the others jump by (part of) the offset within a step or two: ~0.6 rad/s and more
    for mode in ("latest", "weighted_average", "temporal_ensemble"):
        assert results[mode] > 5 * results["crossfade"], mode


def test_weighted_average_is_lerobots_03_old_07_new():
    p = ChunkPlayer(1, "weighted_average")
    p.add(chunk(0.0, np.zeros((10, 1)), names=("a",)), now=0.0, current=np.zeros(1))
    res = p.add(chunk(0.5, np.ones((10, 1)), names=("a",)), now=0.5, current=np.zeros(1))
    assert res.blend_end == pytest.approx(1.0)  # the overlap ends with the old chunk
    assert p.sample(0.7)[0] == pytest.approx(0.7)  # both chunks: 0.3 * 0 + 0.7 * 1
    assert p.sample(1.1)[0] == pytest.approx(1.0)  # past the old chunk: the new one


def test_temporal_ensemble_weights_older_predictions_like_act():
    p = ChunkPlayer(1, "temporal_ensemble")
    p.add(chunk(0.0, np.zeros((30, 1)), names=("a",)), now=0.0, current=np.zeros(1))
    p.add(chunk(0.5, np.ones((30, 1)), names=("a",)), now=0.5, current=np.zeros(1))
    w1 = np.exp(-0.01)
    assert p.sample(1.0)[0] == pytest.approx(w1 / (1 + w1))
    p.add(chunk(0.8, np.full((30, 1), 2.0), names=("a",)), now=0.8, current=p.sample(0.8))
    w2 = np.exp(-0.02)
    assert p.sample(2.0)[0] == pytest.approx((w1 + 2 * w2) / (1 + w1 + w2))
    assert p.sample(3.75)[0] == pytest.approx(2.0)  # only the last chunk reaches this far


def test_new_instruction_resets_the_queue_from_the_commanded_position():
    p = ChunkPlayer(1, "crossfade", crossfade_time=0.3)
    first = chunk(0.0, np.full((30, 1), 5.0), names=("a",))
    first.instruction_id = 1
    p.add(first, now=0.0, current=np.array([5.0]))
    assert p.instruction_id == 1
    other = chunk(0.5, np.full((30, 1), -5.0), names=("a",))
    other.instruction_id = 2
    res = p.add(other, now=0.6, current=np.array([5.0]))
    assert res.reset and not res.merged and p.instruction_id == 2
    assert p.sample(0.6)[0] == pytest.approx(5.0)  # no jump
    assert p.sample(0.9)[0] == pytest.approx(-5.0)  # faded in from a standstill over 0.3 s
    samples = np.array([p.sample(t)[0] for t in np.arange(0.6, 0.9, 0.01)])
    assert np.all(np.diff(samples) <= 1e-12)  # straight to the new instruction, none of the old
    # a stale chunk of yet another instruction still drops the old queue: hold, do not go on
    stale = chunk(0.0, np.zeros((3, 1)), names=("a",))
    stale.instruction_id = 3
    res = p.add(stale, now=1.0, current=np.array([-5.0]))
    assert res.reset and res.kept_steps == 0 and p.sample(1.0) is None


def test_chunk_between_control_periods_does_not_make_the_command_lag():
    p = ChunkPlayer(1, "crossfade")
    p.add(ramp(1.0, 0.0), now=1.0, current=np.array([1.0]))
    q0 = p.sample(1.60)  # after the fade-in from a standstill
    p.add(ramp(1.3, 0.0), now=1.611, current=q0)  # the same line, arriving 11 ms after the tick
    q1 = p.sample(1.62)
    assert q1[0] - q0[0] == pytest.approx(0.02, abs=1e-6)  # one period of motion, no pause


def test_rejects_unknown_aggregation_and_wrong_dimensions():
    with pytest.raises(ValueError, match="crossfade, latest, weighted_average, temporal_ensemble"):
        ChunkPlayer(2, "median")
    with pytest.raises(ValueError, match="action_dim 1 != player dof 2"):
        ChunkPlayer(2).add(chunk(1.0, np.zeros((3, 1)), names=("a",)), now=1.0, current=np.zeros(2))
