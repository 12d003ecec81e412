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


def zeros_chunk(spec, stamp, instruction_id=1, value=0.0):
    return ActionChunk(stamp, 0, spec.joint_names, np.full((50, 6), value, np.float32), 1 / 30,
                       instruction_id=instruction_id)


def test_new_instruction_replaces_and_drops_the_chunk_in_flight(logic, so100):
    feed(logic, so100, 10.0)
    logic.on_instruction("first", 10.0)
    obs = logic.take_observation(10.0)
    assert obs.instruction_id == 1
    logic.on_instruction("second", 10.05)
    assert logic.instruction_id == 2
    assert logic.on_result(obs, zeros_chunk(so100, 10.0), None, 0.02, 10.1) is None
    c = logic.counters
    assert (c.chunks_computed, c.chunks_published, c.chunks_dropped) == (1, 0, 1)
    assert c.drops == {"old instruction": 1}
    feed(logic, so100, 10.1)
    obs = logic.take_observation(10.1)
    assert obs.instruction == "second" and obs.instruction_id == 2
    assert logic.on_result(obs, zeros_chunk(so100, 10.1, 2), None, 0.02, 10.15) is not None
    assert logic.status(10.2)["instruction_id"] == 2
    logic.on_instruction("second", 10.3)  # the same text again: nothing changes
    assert logic.instruction_id == 2


def test_replans_before_the_chunk_runs_out(logic, so100):
    feed(logic, so100, 10.0)
    logic.on_instruction("go", 10.0)
    obs = logic.take_observation(10.0)
    chunk = zeros_chunk(so100, 10.0)
    assert logic.on_result(obs, chunk, None, 0.1, 10.1) is chunk
    # 50 steps at 30 Hz = 1.667 s; the next inference starts when half of it is left
    # (more than the 0.1 s latency + 0.1 s margin)
    assert logic.next_due == pytest.approx(10.0 + 0.5 * 50 / 30)
    feed(logic, so100, 10.5)
    assert logic.take_observation(10.5) is None
    feed(logic, so100, 10.84)
    obs = logic.take_observation(10.84)
    assert obs is not None
    chunk = zeros_chunk(so100, 10.84)
    assert logic.on_result(obs, chunk, None, 0.1, 10.95) is chunk
    assert logic.counters.chunks_merged == 1  # the first chunk plays until 11.667: the bridge blends


def test_slow_inference_starts_earlier_in_latency_mode_only(so100):
    due = {}
    for mode in ("latency", "threshold"):
        lg = PolicyLogic(so100, TOPICS, KEYS, 0.5, replan_threshold=0.5, replan_mode=mode, replan_margin=0.1)
        lg.state = "IDLE"
        feed(lg, so100, 10.0)
        lg.on_instruction("go", 10.0)
        obs = lg.take_observation(10.0)
        assert lg.on_result(obs, zeros_chunk(so100, 10.0), None, 1.0, 11.0) is not None
        due[mode] = lg.next_due
    # observation to chunk took 1.0 s: start when 1.0 + 0.1 s of the 1.667 s chunk is left
    assert due["latency"] == pytest.approx(10.0 + 50 / 30 - 1.1)
    assert due["threshold"] == pytest.approx(10.0 + 0.5 * 50 / 30)


def test_stale_chunk_is_dropped_and_counted(logic, so100, caplog):
    feed(logic, so100, 10.0)
    logic.on_instruction("go", 10.0)
    obs = logic.take_observation(10.0)
    assert logic.on_result(obs, zeros_chunk(so100, 10.0), None, 2.0, 12.0) is None  # ended at 11.667
    c = logic.counters
    assert (c.chunks_computed, c.chunks_published, c.chunks_dropped) == (1, 0, 1)
    assert c.drops == {"stale": 1}
    assert "chunk dropped (stale)" in caplog.text
    assert "inference is slower than a chunk" in logic.status(12.0)["message"]
    feed(logic, so100, 12.0)
    assert logic.take_observation(12.0) is not None, "tries again at once"


@pytest.mark.parametrize("error, value, needle", [
    (RuntimeError("CUDA out of memory"), 0.0, "inference failed: RuntimeError: CUDA out of memory"),
    (None, np.nan, "inference failed: model output rejected: chunk 0: 300 non-finite action value(s)"),
])
def test_inference_error_reports_holds_and_recovers_on_the_next_instruction(logic, so100, caplog, error, value,
                                                                            needle):
    feed(logic, so100, 10.0)
    logic.on_instruction("go", 10.0)
    obs = logic.take_observation(10.0)
    chunk = None if error else zeros_chunk(so100, 10.0, value=value)
    assert logic.on_result(obs, chunk, error, 0.0, 10.1) is None
    st = logic.status(10.1)
    assert st["state"] == "ERROR" and needle in st["message"]
    assert needle in caplog.text  # logged with the cause
    assert st["chunks_computed"] == 1 and st["chunks_dropped"] == 1 and st["chunks_published"] == 0
    feed(logic, so100, 11.5)
    assert logic.take_observation(11.5) is None, "no retry on its own: the bridge holds"
    assert logic.status(11.5)["state"] == "ERROR"
    logic.on_instruction("go", 11.6)  # the same instruction again retries
    assert logic.instruction_id == 2
    obs = logic.take_observation(11.6)
    assert obs is not None and obs.instruction_id == 2
    assert logic.on_result(obs, zeros_chunk(so100, 11.5, 2), None, 0.05, 11.65) is not None
    st = logic.status(11.7)
    assert st["state"] == "RUNNING" and st["message"] == ""
    assert (st["chunks_computed"], st["chunks_published"], st["chunks_dropped"]) == (2, 1, 1)
