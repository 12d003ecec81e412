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
        p.add(chunk(0.5, new, names=("a",)), now=0.5, current=p.sample(0.5))
        samples = np.array([p.sample(t)[0] for t in np.arange(0.5, 1.5, 0.02)])
        steps = np.abs(np.diff(samples))
        if mode == "latest":
            assert steps.max() > 0.15  # jumps to the new chunk within one step period
        else:
            assert steps.max() < 0.06  # spread over the fade
        assert samples[-1] == pytest.approx(1.0)


def test_rejects_unknown_aggregation():
    with pytest.raises(ValueError, match="latest, crossfade"):
        ChunkPlayer(2, "median")
