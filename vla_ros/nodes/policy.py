"""policy_node: runs a SmolVLA policy on the live observation and publishes action chunks.

Subscribes ``vla/instruction`` (std_msgs/String), the cameras in ``camera_topics`` (each mapped to
the policy image key at the same index of ``image_keys``) and ``joint_states``; publishes
``vla/action_chunk`` (vla_ros/ActionChunk, stamped with the observation time, radians) and
``vla/status`` (vla_ros/PolicyStatus, 1 Hz).

Inference runs in a worker thread so callbacks never block. The node is idle until an instruction
arrives; each new instruction gets the next ``instruction_id`` (carried by its chunks, so the
bridge drops what is left of the previous instruction) and a chunk still being computed for the
old one is dropped. It never infers on missing or stale inputs (older than
``max_observation_age``) and says what it waits for in the status.

Asynchronous execution: the next inference starts while the current chunk is still playing, when
:class:`vla_ros.core.trigger.ReplanTrigger` says so: ``replan_mode`` ``latency`` (default) starts
it when ``replan_threshold`` of the chunk is left, or earlier so the next chunk arrives
``replan_margin`` before this one ends given the measured latency (90th percentile of recent
observation-to-chunk times); ``threshold`` uses the fraction alone (LeRobot's
``chunk_size_threshold``).

Every inference is accounted for in the status: computed = published + dropped; merged counts the
chunks published while the previous one was still executing. An inference that raises (or
returns non-finite actions) is logged with its cause, the status goes to ERROR and nothing more is
published (the bridge plays out what it has, then holds) until the next instruction, which
retries; the node keeps serving.
"""
from __future__ import annotations

import logging
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from ..core.chunk import ActionChunk
from ..core.embodiment import RobotSpec, reorder
from ..core.trigger import TRIGGER_MODES, ReplanTrigger
from ..transport.codecs import ENCODINGS, image_to_numpy, to_rgb8
from ..transport.params import Param
from ..transport.port import RELIABLE_QOS, SENSOR_QOS, STATE_QOS, Port
from ..transport.types import stamp_to_sec

SUPPORTED_ENCODINGS = tuple(ENCODINGS)
STATES = ("LOADING", "IDLE", "WAITING", "RUNNING", "ERROR")
DROP_REASONS = ("stale", "superseded", "old instruction", "error")

PARAMS = [
    Param("robot", "str", "so100", "Robot description (config/robots/<robot>.yaml or a path)"),
    Param("model", "str", "tiny", "Model variant (config/models/<model>.yaml)"),
    Param("checkpoint", "str", "", "Override the variant's checkpoint: hub id or LeRobot checkpoint directory"),
    Param("device", "str", "auto", "Inference device: auto, cpu, cuda, cuda:N or mps"),
    Param("dtype", "str", "", "Weights dtype: auto, float32 or bfloat16; empty takes the model's",
          choices=("", "auto", "float32", "bfloat16")),
    Param("num_steps", "int", 0, "Flow-matching denoising steps; 0 takes the model's", min=0),
    Param("image_size", "int", 0, "Side of the square image the policy sees; 0 takes the model's", min=0),
    Param("camera_topics", "str[]", [], "Camera topics; empty takes the robot's cameras"),
    Param("image_keys", "str[]", [], "Policy image key for each camera topic (same order); empty takes the robot's"),
    Param("check_image_size", "bool", True, "Reject frames whose size differs from the robot's camera spec"),
    Param("max_observation_age", "float", 0.5, "Never infer on an input older than this (s)", min=0.01),
    Param("replan_mode", "str", "latency",
          "When the next inference starts: 'latency' (replan_threshold of the chunk left, or earlier so the "
          "next chunk arrives replan_margin before this one ends, given the measured latency) or "
          "'threshold' (replan_threshold alone, LeRobot's chunk_size_threshold)", choices=TRIGGER_MODES),
    Param("replan_threshold", "float", 0.5,
          "Start the next inference when this fraction of the current chunk is left (1: back to back)",
          min=0.0, max=1.0),
    Param("replan_margin", "float", 0.1,
          "'latency' mode: the next chunk should arrive this long (s) before the current one ends", min=0.0),
    Param("status_rate", "float", 1.0, "vla/status publish rate in Hz", min=0.01),
    Param("liveliness_lease", "float", 0.02,
          "Liveliness lease of the chunk publisher (s): the bridge holds this soon after the node dies; 0 disables",
          min=0.0),
]


@dataclass
class Observation:
    stamp: float
    instruction: str
    instruction_id: int
    state: np.ndarray  # radians, robot order
    images: dict[str, Any]  # policy key -> Image message (decoded in the worker)


@dataclass
class _Input:
    msg: Any = None
    stamp: float = -np.inf
    problem: str = ""


@dataclass
class Counters:
    chunks_computed: int = 0
    chunks_published: int = 0
    chunks_merged: int = 0
    chunks_dropped: int = 0
    observations_rejected: int = 0
    drops: Counter = field(default_factory=Counter)  # reason (DROP_REASONS) -> chunks
    latencies: deque = field(default_factory=lambda: deque(maxlen=50))
    publish_times: deque = field(default_factory=lambda: deque(maxlen=50))
    state_times: deque = field(default_factory=lambda: deque(maxlen=100))


class ChunkTiming(NamedTuple):
    """Where the time of one published chunk went, in seconds (``PolicyNode.chunk_timings``)."""

    total: float  # observation stamp -> publish() returned (port clock; includes input delivery)
    since_trigger: float  # observation taken by the node -> publish() returned
    predict: float  # inside runtime.predict_chunk

    @property
    def overhead(self) -> float:
        """What the node adds to the model: ``total - predict``."""
        return self.total - self.predict


class PolicyLogic:
    """Inputs, freshness, scheduling and bookkeeping of the policy node (no middleware)."""

    def __init__(self, spec: RobotSpec, camera_topics: list[str], image_keys: list[str],
                 max_observation_age: float, replan_threshold: float, check_image_size: bool = True,
                 logger: logging.Logger | None = None, replan_mode: str = "latency",
                 replan_margin: float = 0.1) -> None:
        if len(camera_topics) != len(image_keys):
            raise ValueError(f"camera_topics ({len(camera_topics)}) and image_keys ({len(image_keys)}) "
                             "must have the same length")
        self.spec = spec
        self.keys = dict(zip(camera_topics, image_keys))
        self.sizes = {}
        for topic in camera_topics:
            cam = next((c for c in spec.cameras if c.topic == topic), None)
            if cam is not None and check_image_size:
                self.sizes[topic] = (cam.width, cam.height)
        self.max_age = max_observation_age
        self.trigger = ReplanTrigger(replan_mode, replan_threshold, replan_margin)
        self.log = logger or logging.getLogger("policy_node")
        self.instruction = ""
        self.instruction_id = 0
        self.images = {t: _Input() for t in camera_topics}
        self.joints = _Input()
        self.joint_problem = ""
        self.counters = Counters()
        self.state = "LOADING"
        self.message = ""
        self.next_due = 0.0  # time the next inference should start
        self.busy = False
        self.failed = False  # an inference failed: no more until the next instruction
        self.last_published: ActionChunk | None = None
        self.publish_stale = False  # benchmarks only: time a model slower than a chunk lasts

    # -- inputs -----------------------------------------------------------------------------------
    def on_instruction(self, text: str, now: float) -> bool:
        """A new instruction (or the same one again after an error) restarts the chunk queue."""
        text = (text or "").strip()
        if not text:
            self.log.warning("ignoring an empty instruction on vla/instruction")
            return False
        if text != self.instruction or self.failed:
            self.instruction_id += 1
            self.log.info("instruction %d: %r%s", self.instruction_id, text,
                          " (retry after the error)" if self.failed else "")
            self.instruction = text
            self.next_due = 0.0  # infer at once
            if self.failed:
                self.failed = False
                self.state = "IDLE"  # take_observation / status work out the state from the inputs
        return True

    def on_image(self, topic: str, msg: Any, stamp: float) -> str | None:
        """Keep a frame for the next observation; returns why it was rejected, if it was."""
        inp = self.images[topic]
        problem = ""
        if msg.encoding not in SUPPORTED_ENCODINGS:
            problem = f"{topic}: encoding '{msg.encoding}' not supported ({', '.join(SUPPORTED_ENCODINGS)})"
        elif topic in self.sizes and (msg.width, msg.height) != self.sizes[topic]:
            w, h = self.sizes[topic]
            problem = f"{topic}: size {msg.width}x{msg.height}, expected {w}x{h}"
        if problem:
            if problem != inp.problem:
                self.log.warning("%s; frames skipped", problem)
            inp.problem = problem
            self.counters.observations_rejected += 1
            return problem
        inp.msg, inp.stamp, inp.problem = msg, stamp, ""
        return None

    def on_joint_state(self, names: list[str], positions, stamp: float) -> str | None:
        q, missing = reorder(positions, names, self.spec.joint_names)
        self.counters.state_times.append(stamp)
        if missing:
            self.joint_problem = f"joint_states missing joints: {', '.join(missing)}"
        elif not np.all(np.isfinite(q)):
            bad = [n for n, v in zip(self.spec.joint_names, q) if not np.isfinite(v)]
            self.joint_problem = f"joint_states non-finite: {', '.join(bad)}"
        else:
            self.joint_problem = ""
            self.joints.msg, self.joints.stamp = q, stamp
            return None
        self.counters.observations_rejected += 1
        return self.joint_problem

    # -- decisions --------------------------------------------------------------------------------
    def waiting_for(self, now: float) -> list[str]:
        out = []
        if not self.instruction:
            out.append("instruction")
        for topic, inp in self.images.items():
            if inp.problem:
                out.append(inp.problem)
            elif inp.msg is None:
                out.append(f"{topic} (no frame yet)")
            elif now - inp.stamp > self.max_age:
                out.append(f"{topic} (stale {now - inp.stamp:.2f} s)")
        if self.joint_problem:
            out.append(self.joint_problem)
        elif self.joints.msg is None:
            out.append("joint_states (none yet)")
        elif now - self.joints.stamp > self.max_age:
            out.append(f"joint_states (stale {now - self.joints.stamp:.2f} s)")
        return out

    def take_observation(self, now: float) -> Observation | None:
        """An observation to infer on now, or None (not due, busy, failed, or inputs not usable)."""
        if self.state == "LOADING" or self.busy or self.failed:
            return None
        waiting = self.waiting_for(now)
        if waiting:
            self.state = "IDLE" if waiting == ["instruction"] or not self.instruction else "WAITING"
            return None
        if self.state != "RUNNING":
            self.state = "RUNNING"
        if now < self.next_due:
            return None
        self.busy = True
        return Observation(self.joints.stamp, self.instruction, self.instruction_id, self.joints.msg.copy(),
                           {self.keys[t]: inp.msg for t, inp in self.images.items()})

    def _drop(self, reason: str, level: int, text: str) -> None:
        self.counters.chunks_dropped += 1
        self.counters.drops[reason] += 1
        self.log.log(level, "chunk dropped (%s): %s", reason, text)

    def on_result(self, obs: Observation, chunk: ActionChunk | None, error: BaseException | None,
                  latency: float, now: float) -> ActionChunk | None:
        """Book a finished inference; returns the chunk to publish, if any.

        ``latency`` is the inference time (reported in the status); the trigger learns the time
        from the observation to now, which is what the next chunk's arrival depends on.
        """
        self.busy = False
        c = self.counters
        c.chunks_computed += 1
        if obs.instruction_id != self.instruction_id:
            what = f"failed ({type(error).__name__}: {error})" if error is not None else "computed"
            self._drop("old instruction", logging.INFO,
                       f"{what} for instruction {obs.instruction_id} {obs.instruction!r}, "
                       f"now {self.instruction_id} {self.instruction!r}")
            return None
        problem = None
        if error is None and chunk is not None:
            problem = chunk.problem(self.spec.joint_names)
        if error is not None or chunk is None or problem:
            cause = (f"{type(error).__name__}: {error}" if error is not None
                     else f"model output rejected: {problem or 'no chunk'}")
            self.state, self.failed = "ERROR", True
            self.message = f"inference failed: {cause}; nothing is published until the next instruction"
            self._drop("error", logging.ERROR, self.message)
            if error is not None:
                self.log.debug("inference traceback", exc_info=error)
            return None
        c.latencies.append(latency)
        self.trigger.record_latency(now - obs.stamp)
        prev = self.last_published
        if now >= chunk.end_time and not self.publish_stale:
            self.message = (f"chunk from an observation {now - chunk.stamp:.2f} s old arrived after its last step "
                            f"({chunk.end_time - chunk.stamp:.2f} s); inference is slower than a chunk")
            self._drop("stale", logging.WARNING, self.message)
            self.next_due = 0.0
            return None
        if prev is not None and chunk.stamp <= prev.stamp:
            self._drop("superseded", logging.WARNING,
                       f"observation {chunk.stamp:.3f} is not newer than the last published chunk's {prev.stamp:.3f}")
            return None
        if prev is not None and now < prev.end_time and prev.instruction_id == chunk.instruction_id:
            c.chunks_merged += 1
        if self.state == "ERROR":
            self.state = "RUNNING"
        self.message = ""
        self.next_due = self.trigger.due_after(chunk)
        self.last_published = chunk
        c.chunks_published += 1
        c.publish_times.append(now)
        return chunk

    def expected_latency(self) -> float:
        """The trigger's running estimate of observation-to-chunk time (s)."""
        return self.trigger.expected_latency()

    def status(self, now: float) -> dict[str, Any]:
        c = self.counters
        waiting = [] if self.state in ("LOADING", "ERROR") else self.waiting_for(now)
        if self.state not in ("LOADING", "ERROR") and not self.busy:
            self.state = "RUNNING" if not waiting else ("IDLE" if not self.instruction else "WAITING")

        def rate(times: deque) -> float:
            recent = [t for t in times if now - t < 5.0]
            return (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0

        return {
            "state": self.state, "instruction": self.instruction, "instruction_id": self.instruction_id,
            "waiting_for": waiting,
            "last_latency": c.latencies[-1] if c.latencies else 0.0,
            "median_latency": float(np.median(c.latencies)) if c.latencies else 0.0,
            "chunk_rate": rate(c.publish_times), "observation_rate": rate(c.state_times),
            "chunks_computed": c.chunks_computed, "chunks_published": c.chunks_published,
            "chunks_merged": c.chunks_merged, "chunks_dropped": c.chunks_dropped,
            "observations_rejected": c.observations_rejected, "message": self.message,
        }


class PolicyNode:
    def __init__(self, port: Port) -> None:
        from ..policy.variants import load_variant
        from ..policy.worker import InferenceWorker
        from ..robots import load_robot

        self.port = port
        p = self.params = port.parameters(PARAMS)
        self.spec = spec = load_robot(p.robot)
        topics = p.camera_topics or [c.topic for c in spec.cameras]
        keys = p.image_keys or ([c.policy_key for c in spec.cameras] if not p.camera_topics else [])
        self.variant = load_variant(p.model, checkpoint_override=p.checkpoint or None,
                                    device_override=p.device or None, dtype_override=p.dtype or None,
                                    num_steps_override=p.num_steps or None,
                                    image_size_override=p.image_size or None)
        self.logic = PolicyLogic(spec, topics, keys, p.max_observation_age, p.replan_threshold,
                                 p.check_image_size, port.logger, p.replan_mode, p.replan_margin)
        self.runtime = None
        self.exit_code = 0
        self.chunk_id = 0
        self.chunk_timings: deque[ChunkTiming] = deque(maxlen=200)  # newest last (benchmarks)
        chunk_qos = type(RELIABLE_QOS)(reliable=True, depth=10, liveliness_lease=p.liveliness_lease)
        self.pub_chunk = port.publisher("vla/action_chunk", "vla_ros/msg/ActionChunk", chunk_qos)
        self.pub_status = port.publisher("vla/status", "vla_ros/msg/PolicyStatus", RELIABLE_QOS)
        port.subscribe("vla/instruction", "std_msgs/msg/String", self._on_instruction, RELIABLE_QOS)
        port.subscribe("joint_states", "sensor_msgs/msg/JointState", self._on_joint_state, STATE_QOS)
        for topic in topics:
            port.subscribe(topic, "sensor_msgs/msg/Image", lambda m, t=topic: self._on_image(t, m), SENSOR_QOS)
        self.status_timer = port.timer(1.0 / p.status_rate, self._publish_status)
        self.worker = InferenceWorker()
        port.logger.info("policy_node: model %s (%s) for %s; cameras %s", self.variant.name,
                         self.variant.checkpoint, spec.name, dict(zip(topics, keys)))
        self.worker.submit(self._load, on_done=self._loaded)

    # -- model ----------------------------------------------------------------------------------
    def _load(self):
        from ..policy.runtime import load_runtime

        return load_runtime(self.variant, self.spec, image_keys=list(self.logic.keys.values()), warmup=True)

    def _loaded(self, runtime, error, timing) -> None:
        def done() -> None:
            if error is not None:
                self.logic.state = "ERROR"
                self.logic.message = str(error)
                self.port.logger.error("%s", error)
                self._publish_status()
                self.exit_code = 2
                self.port.shutdown()
                return
            self.runtime = runtime
            self.logic.state = "IDLE"
            o = runtime.options
            levers = [o["dtype"], f"{o['num_steps']} flow steps",
                      f"{o['image_size']} px images" if o["image_size"] else "images at their own size"]
            levers += ["int8 vision"] * bool(o["vision_int8"]) + ["CPU bf16 kernels"] * bool(o["cpu_kernels"])
            self.port.logger.info("model ready on %s (%s; chunk %d x %d, %.1f s to load)", runtime.device,
                                  ", ".join(levers),
                                  runtime.chunk_size, runtime.action_dim, timing)
            self._publish_status()

        self.port.call_soon(done)

    # -- callbacks ------------------------------------------------------------------------------
    def _on_instruction(self, msg) -> None:
        if self.logic.on_instruction(msg.data, self.port.now()):
            self._maybe_infer()

    def _on_image(self, topic: str, msg) -> None:
        self.logic.on_image(topic, msg, stamp_to_sec(msg.header.stamp))

    def _on_joint_state(self, msg) -> None:
        stamp = stamp_to_sec(msg.header.stamp)
        self.logic.on_joint_state(list(msg.name), msg.position, stamp)
        self._maybe_infer()

    def _maybe_infer(self) -> None:
        if self.runtime is None:
            return
        now = self.port.now()
        obs = self.logic.take_observation(now)
        if obs is None:
            return
        t_trigger = time.perf_counter()
        if not self.worker.submit(self._infer, obs, on_done=lambda r, e, t: self.port.call_soon(
                lambda: self._finished(obs, r, e, t, t_trigger))):
            self.logic.busy = False

    def _infer(self, obs: Observation) -> ActionChunk:
        images = {key: to_rgb8(image_to_numpy(msg), msg.encoding) for key, msg in obs.images.items()}
        state = self.spec.to_policy(obs.state).astype(np.float32)
        t0 = time.perf_counter()
        actions = self.runtime.predict_chunk(images, state, obs.instruction)
        predict = time.perf_counter() - t0
        actions = self.spec.from_policy(np.asarray(actions, dtype=np.float64)).astype(np.float32)
        chunk = ActionChunk(obs.stamp, 0, self.spec.joint_names, actions, 1.0 / self.spec.policy_fps,
                            self.variant.name, instruction_id=obs.instruction_id)
        chunk.predict_time = predict  # type: ignore[attr-defined]
        return chunk

    def _finished(self, obs: Observation, chunk, error, timing, t_trigger: float) -> None:
        now = self.port.now()
        if chunk is not None:
            chunk.inference_latency = float(timing)
        was = self.logic.state
        chunk = self.logic.on_result(obs, chunk, error, float(timing or 0.0), now)
        if chunk is None:
            if self.logic.state == "ERROR" and was != "ERROR":
                self._publish_status()  # say it now, not at the next status period
            return
        self.chunk_id += 1
        msg = self.port.new(
            "vla_ros/msg/ActionChunk",
            header=self.port.header(chunk.stamp),
            chunk_id=self.chunk_id,
            joint_names=list(chunk.joint_names),
            horizon=chunk.horizon,
            action_dim=chunk.action_dim,
            step_period=chunk.step_period,
            actions=chunk.actions.reshape(-1),
            model_variant=chunk.model_variant,
            inference_latency=chunk.inference_latency,
            instruction_id=chunk.instruction_id,
        )
        self.pub_chunk.publish(msg)
        self.chunk_timings.append(ChunkTiming(self.port.now() - chunk.stamp, time.perf_counter() - t_trigger,
                                              getattr(chunk, "predict_time", 0.0)))

    def _publish_status(self) -> None:
        s = self.logic.status(self.port.now())
        rt = self.runtime
        self.pub_status.publish(self.port.new(
            "vla_ros/msg/PolicyStatus",
            header=self.port.header(self.port.now()),
            state=STATES.index(s["state"]), state_name=s["state"],
            model_variant=self.variant.name, checkpoint=str(self.variant.checkpoint),
            device=str(rt.device) if rt is not None else str(self.variant.device),
            instruction=s["instruction"], instruction_id=s["instruction_id"],
            last_latency=s["last_latency"], median_latency=s["median_latency"],
            chunk_rate=s["chunk_rate"], observation_rate=s["observation_rate"],
            chunks_computed=s["chunks_computed"], chunks_published=s["chunks_published"],
            chunks_merged=s["chunks_merged"], chunks_dropped=s["chunks_dropped"],
            observations_rejected=s["observations_rejected"],
            waiting_for=s["waiting_for"], message=s["message"],
        ))

    def close(self) -> None:
        self.status_timer.cancel()
        self.worker.close()


def main(argv: list[str] | None = None) -> int:
    from .runner import run

    return run(PolicyNode, "policy_node", argv)


if __name__ == "__main__":
    raise SystemExit(main())
