"""PolicyRuntime: numpy observation -> unnormalized action chunk, through LeRobot's inference path."""
from __future__ import annotations

import numpy as np
import pytest

from vla_ros.policy.errors import PolicyMismatchError

rng = np.random.default_rng(0)


def observation(runtime, height=480, width=640):
    images = {key: rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for key in runtime.image_keys}
    return images, np.zeros(runtime.state_dim, dtype=np.float32)


def test_properties(runtime, robot_dims, tiny_dir):
    assert runtime.image_keys == robot_dims.image_keys
    assert (runtime.state_dim, runtime.action_dim, runtime.chunk_size) == (6, 6, 50)
    assert (runtime.variant, runtime.device, runtime.dtype) == ("tiny", "cpu", "float32")
    assert runtime.checkpoint == str(tiny_dir) and runtime.checkpoint_dir == tiny_dir
    stats = runtime.normalization_stats()
    np.testing.assert_allclose(stats["observation.state"]["mean"], robot_dims.stats()["observation.state"]["mean"])


def test_predict_chunk(runtime):
    images, state = observation(runtime)
    actions = runtime.predict_chunk(images, state, "pick up the red cube")
    assert actions.shape == (runtime.chunk_size, runtime.action_dim) and actions.dtype == np.float32
    assert np.all(np.isfinite(actions))
    assert set(runtime.last_timing) == {"preprocess", "model", "postprocess", "total"}
    assert all(v > 0 for v in runtime.last_timing.values())


def test_outputs_are_unnormalized_with_the_robots_stats(runtime, robot_dims):
    """Same seed, same inputs: the chunk is mean + std * (the normalized output)."""
    images, state = observation(runtime)
    actions = np.stack([runtime.predict_chunk(images, state, "open the drawer", seed=s) for s in range(4)])
    stats = robot_dims.stats()["action"]
    normalized = (actions - np.array(stats["mean"])) / np.array(stats["std"])
    assert 0.05 < np.abs(normalized).mean() < 5.0  # in the robot's range, not in raw model units


@pytest.mark.parametrize("height, width", [(480, 640), (64, 64), (37, 100), (720, 1280)])
def test_any_image_size(runtime, height, width):
    images, state = observation(runtime, height, width)
    assert runtime.predict_chunk(images, state, "stack the cubes").shape == (50, 6)


def test_instruction_and_seed(runtime):
    images, state = observation(runtime)
    a = runtime.predict_chunk(images, state, "pick up the red cube", seed=7)
    b = runtime.predict_chunk(images, state, "pick up the red cube", seed=7)
    c = runtime.predict_chunk(images, state, "open the drawer", seed=7)
    d = runtime.predict_chunk(images, state, "pick up the red cube", seed=8)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3, "the instruction does not reach the model"
    assert np.abs(a - d).max() > 1e-3


def test_state_changes_the_output(runtime):
    images, state = observation(runtime)
    a = runtime.predict_chunk(images, state, "pick", seed=1)
    b = runtime.predict_chunk(images, state + 30.0, "pick", seed=1)
    assert np.abs(a - b).max() > 1e-3


def test_bad_inputs(runtime):
    images, state = observation(runtime)
    key = runtime.image_keys[0]
    with pytest.raises(ValueError, match="missing images"):
        runtime.predict_chunk({key: images[key]}, state, "pick")
    with pytest.raises(ValueError, match=f"image '{key}': expected HxWx3 uint8"):
        runtime.predict_chunk({**images, key: images[key].astype(np.float32)}, state, "pick")
    with pytest.raises(ValueError, match="state: expected 6 values, got 5"):
        runtime.predict_chunk(images, state[:5], "pick")
    with pytest.raises(ValueError, match="non-finite"):
        runtime.predict_chunk(images, np.full(6, np.nan, np.float32), "pick")
    with pytest.raises(ValueError, match="instruction"):
        runtime.predict_chunk(images, state, "   ")


def test_check_compatible(runtime, robot_dims):
    runtime.check_compatible(6, 6, [*robot_dims.image_keys, "observation.images.extra"])
    with pytest.raises(PolicyMismatchError) as err:
        runtime.check_compatible(7, 14, ["observation.images.top", "observation.images.front"])
    message = str(err.value)
    assert "state dimension: policy 6, robot 7" in message
    assert "action dimension: policy 6, robot 14" in message
    assert "missing ['observation.images.wrist']" in message


def test_warmup(runtime):
    timing = runtime.warmup(iterations=1)
    assert timing["total"] > 0


def test_tiny_needs_a_robot(use_tiny_cache):
    from vla_ros.policy.runtime import make_runtime

    with pytest.raises(ValueError, match="model 'tiny' is built for a robot"):
        make_runtime("tiny")


def test_make_runtime_checks_the_robot(use_tiny_cache, tiny_dir, robot_dims):
    """A checkpoint given with checkpoint:= is checked against the robot at start."""
    from dataclasses import replace

    from vla_ros.policy.runtime import make_runtime

    other = replace(robot_dims, image_keys=("observation.images.front",))
    with pytest.raises(PolicyMismatchError, match="missing"):
        make_runtime("frozen", checkpoint=str(tiny_dir), device="cpu", robot_dims=other, warmup=False)


def test_threads_knob(monkeypatch):
    from vla_ros.policy.runtime import default_num_threads

    monkeypatch.setenv("VLA_ROS_TORCH_THREADS", "3")
    assert default_num_threads() == 3
    monkeypatch.setenv("VLA_ROS_TORCH_THREADS", "zero")
    with pytest.raises(ValueError, match="VLA_ROS_TORCH_THREADS"):
        default_num_threads()
    monkeypatch.delenv("VLA_ROS_TORCH_THREADS")
    assert default_num_threads() >= 1
