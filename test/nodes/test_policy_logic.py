"""PolicyLogic: inputs, freshness and bookkeeping of the policy node, without a middleware."""
import numpy as np
import pytest

from vla_ros.core.chunk import ActionChunk
from vla_ros.nodes.policy import PolicyLogic
from vla_ros.transport import types

TOPICS = ["camera/top/image_raw", "camera/wrist/image_raw"]
KEYS = ["observation.images.top", "observation.images.wrist"]


def image(w=640, h=480, encoding="rgb8"):
    return types.new("sensor_msgs/msg/Image", width=w, height=h, encoding=encoding, step=w * 3,
                     data=np.zeros(w * h * 3, np.uint8))


@pytest.fixture
def logic(so100):
    lg = PolicyLogic(so100, TOPICS, KEYS, max_observation_age=0.5, replan_threshold=0.5)
    lg.state = "IDLE"
    return lg


def feed(lg, spec, t):
    for topic in TOPICS:
        assert lg.on_image(topic, image(), t) is None
    assert lg.on_joint_state(spec.joint_names, spec.home, t) is None


def test_idle_until_instruction(logic, so100):
    feed(logic, so100, 10.0)
    assert logic.take_observation(10.01) is None
    assert logic.waiting_for(10.01) == ["instruction"]
    assert logic.status(10.01)["state"] == "IDLE"
    logic.on_instruction("pick up the red cube", 10.01)
    obs = logic.take_observation(10.02)
    assert obs is not None and obs.instruction == "pick up the red cube" and obs.stamp == 10.0
    assert set(obs.images) == set(KEYS)
    assert logic.take_observation(10.03) is None, "one inference at a time"


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_instruction_is_ignored(logic, so100, text, caplog):
    logic.on_instruction("wave", 1.0)
    assert logic.on_instruction(text, 2.0) is False
    assert logic.instruction == "wave"
    assert "empty instruction" in caplog.text


def test_never_infers_on_stale_inputs(logic, so100):
    feed(logic, so100, 10.0)
    logic.on_instruction("go", 10.0)
    assert logic.take_observation(10.8) is None
    waiting = logic.waiting_for(10.8)
    assert any("camera/top/image_raw (stale 0.80 s)" == w for w in waiting)
    assert any(w.startswith("joint_states (stale") for w in waiting)
    assert logic.status(10.8)["state"] == "WAITING"


@pytest.mark.parametrize("msg, needle", [
    (image(encoding="yuv422"), "encoding 'yuv422' not supported"),
    (image(w=320, h=240), "size 320x240, expected 640x480"),
])
def test_wrong_image_is_skipped_and_reported(logic, so100, msg, needle, caplog):
    feed(logic, so100, 10.0)
    logic.on_instruction("go", 10.0)
    for _ in range(3):
        assert needle in logic.on_image(TOPICS[0], msg, 10.0)
    assert caplog.text.count(needle) == 1, "warned once"
    assert logic.take_observation(10.01) is None
    assert any(needle in w for w in logic.waiting_for(10.01))
    assert logic.counters.observations_rejected == 3
    logic.on_image(TOPICS[0], image(), 10.02)  # a good frame clears it
    assert logic.take_observation(10.03) is not None


def test_missing_joints_are_listed_and_block_inference(logic, so100):
    feed(logic, so100, 10.0)
    logic.on_instruction("go", 10.0)
    problem = logic.on_joint_state(so100.joint_names[:4], so100.home[:4], 10.01)
    assert problem == "joint_states missing joints: wrist_roll, gripper"
    assert logic.take_observation(10.02) is None
    assert "joint_states missing joints: wrist_roll, gripper" in logic.status(10.02)["waiting_for"]


def test_new_instruction_replaces_and_drops_the_chunk_in_flight(logic, so100):
    feed(logic, so100, 10.0)
    logic.on_instruction("first", 10.0)
    obs = logic.take_observation(10.0)
    logic.on_instruction("second", 10.05)
    chunk = ActionChunk(10.0, 0, so100.joint_names, np.zeros((50, 6), np.float32), 1 / 30)
    assert logic.on_result(obs, chunk, None, 0.02, 10.1) is None
    assert logic.counters.chunks_dropped == 1 and logic.counters.chunks_computed == 1
    feed(logic, so100, 10.1)
    assert logic.take_observation(10.1).instruction == "second"


def test_replans_before_the_chunk_runs_out(logic, so100):
    feed(logic, so100, 10.0)
    logic.on_instruction("go", 10.0)
    obs = logic.take_observation(10.0)
    chunk = ActionChunk(10.0, 0, so100.joint_names, np.zeros((50, 6), np.float32), 1 / 30)
    assert logic.on_result(obs, chunk, None, 0.1, 10.1) is chunk
    # 50 steps at 30 Hz = 1.667 s; half of it left at 10.833, minus ~0.1 s expected latency
    assert logic.next_due == pytest.approx(10.0 + 0.5 * 50 / 30 - 0.1)
    feed(logic, so100, 10.5)
    assert logic.take_observation(10.5) is None
    feed(logic, so100, 10.74)
    assert logic.take_observation(10.74) is not None


def test_inference_error_reports_and_recovers(logic, so100):
    feed(logic, so100, 10.0)
    logic.on_instruction("go", 10.0)
    obs = logic.take_observation(10.0)
    assert logic.on_result(obs, None, RuntimeError("boom"), 0.0, 10.1) is None
    st = logic.status(10.1)
    assert st["state"] == "ERROR" and "RuntimeError: boom" in st["message"]
    logic.on_instruction("again", 10.2)  # a new instruction retries at once
    feed(logic, so100, 10.2)
    assert logic.take_observation(10.2) is not None
