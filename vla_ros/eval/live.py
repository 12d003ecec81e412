"""Recording live topics to a rosbag2, and playing a rosbag2 back onto the transport.

Both work over a transport port (the dds backend for ``vla-ros record`` / ``vla-ros replay``), so
they see and feed the same topics as the nodes. On a ROS 2 machine ``ros2 bag record`` /
``ros2 bag play`` do the same job and read and write the same bags.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

from ..core.embodiment import RobotSpec
from ..transport import types
from ..transport.port import Port, QoS
from .bagio import BagError, BagReader, BagWriter

log = logging.getLogger(__name__)

#: The vla_ros topics worth recording besides a robot's cameras, joint states and commands.
VLA_TOPICS = {
    "vla/instruction": "std_msgs/msg/String",
    "vla/action_chunk": "vla_ros/msg/ActionChunk",
    "vla/status": "vla_ros/msg/PolicyStatus",
    "vla/enable": "std_msgs/msg/Bool",
    "vla/estop": "std_msgs/msg/Bool",
}
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")


def robot_topics(robot: RobotSpec, compressed: bool = False) -> dict[str, str]:
    """Relative topic -> type of what a session of ``robot`` publishes."""
    out = {}
    for cam in robot.cameras:
        out[cam.topic] = "sensor_msgs/msg/Image"
        if compressed:
            out[cam.topic + "/compressed"] = "sensor_msgs/msg/CompressedImage"
    out["joint_states"] = "sensor_msgs/msg/JointState"
    out[f"{robot.controller}/joint_trajectory"] = "trajectory_msgs/msg/JointTrajectory"
    out.update(VLA_TOPICS)
    return out


def guess_type(topic: str) -> str:
    name = topic.strip("/")
    for known, msg_type in VLA_TOPICS.items():
        if name == known or name.endswith("/" + known):
            return msg_type
    if name == "joint_states" or name.endswith("/joint_states"):
        return "sensor_msgs/msg/JointState"
    if name.endswith("/compressed"):
        return "sensor_msgs/msg/CompressedImage"
    if name.endswith(("/image_raw", "/image")):
        return "sensor_msgs/msg/Image"
    if name.endswith("/joint_trajectory"):
        return "trajectory_msgs/msg/JointTrajectory"
    raise ValueError(f"don't know the type of topic '{topic}'; give it as {topic}:pkg/msg/Type")


def parse_topics(specs: Sequence[str]) -> dict[str, str]:
    """``['joint_states', 'cam/x:sensor_msgs/msg/Image']`` -> {topic: type}."""
    out = {}
    for spec in specs:
        topic, _, msg_type = spec.partition(":")
        msg_type = msg_type or guess_type(topic)
        types.msg_class(msg_type)
        out[topic] = msg_type
    return out


def record_qos(msg_type: str) -> QoS:
    """What the recorder asks for: best effort for images (it matches every camera publisher),
    reliable otherwise; deep queues so a slow disk does not drop messages."""
    if msg_type in IMAGE_TYPES:
        return QoS(reliable=False, depth=100)
    return QoS(reliable=True, depth=200)


def play_qos(msg_type: str, topic: str) -> QoS:
    if msg_type in IMAGE_TYPES:
        return QoS(reliable=False, depth=5)
    if msg_type == "std_msgs/msg/Bool" and topic.strip("/").endswith(("enable", "estop")):
        return QoS(reliable=True, depth=1, transient_local=True)
    return QoS(reliable=True, depth=100)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt in the main thread (so the bag is closed the same way)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[threading.Event]:
    """SIGINT and SIGTERM set ``stop`` instead of raising, so a loop that checks it ends cleanly
    wherever the signal lands (a KeyboardInterrupt raised inside a callback that DDS invokes from C
    would be swallowed there, and the loop would never end)."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        stop.set()

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


class Recorder:
    """Subscribes ``topics`` on ``port`` and writes every message (its CDR bytes, stamped with the
    receive time) to ``bag``. Callbacks run on the port's executor: spin the port."""

    def __init__(self, port: Port, bag: BagWriter, topics: Mapping[str, str],
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.port, self.bag, self.clock = port, bag, clock
        self.names: dict[str, str] = {}
        self.errors = 0
        for topic, msg_type in topics.items():
            name = port.resolve(topic)
            bag.add_topic(name, msg_type)
            self.names[topic] = name
            port.subscribe(topic, msg_type, self._callback(name, msg_type), record_qos(msg_type))

    def _callback(self, name: str, msg_type: str) -> Callable[[Any], None]:
        def on_msg(msg: Any) -> None:
            t = self.clock()
            try:
                data = types.serialize(msg, msg_type)
            except Exception as exc:  # noqa: BLE001 - one bad message must not stop a recording
                self.errors += 1
                self.port.warn_once(f"rec:{name}", f"{name}: cannot serialize a message ({exc}); skipped")
                return
            self.bag.write(name, t, data)
        return on_msg

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.bag.counts)

    def run(self, duration: float = 0.0, progress: bool = True, stop: threading.Event | None = None) -> None:
        """Spin until ``duration`` seconds passed (0: forever), ``stop`` is set or Ctrl-C."""
        from tqdm import tqdm

        end = time.monotonic() + duration if duration > 0 else float("inf")
        bar = tqdm(desc="record", unit="msg", disable=not progress, dynamic_ncols=True)
        last = 0
        try:
            while time.monotonic() < end and not (stop is not None and stop.is_set()):
                self.port.spin_once(0.1)
                total = sum(self.bag.counts.values())
                if total != last:
                    bar.update(total - last)
                    last = total
                    bar.set_postfix_str(" ".join(f"{n.rsplit('/', 2)[-2] if n.endswith('image_raw') else n.rsplit('/', 1)[-1]}"
                                                 f"={c}" for n, c in self.bag.counts.items() if c), refresh=False)
        finally:
            bar.close()


@dataclass
class PlayOptions:
    rate: float = 1.0
    start_offset: float = 0.0
    duration: float = 0.0  # seconds of bag time to play after the offset (0: to the end)
    loop: bool = False
    topics: Sequence[str] | None = None  # bag topics to play (None: all)
    remap: Mapping[str, str] | None = None  # bag topic -> published topic
    restamp: bool = True  # shift header stamps to the time of playing
    wait: float = 2.0  # seconds to wait for subscribers before starting


class Replayer:
    """Publishes a bag's messages on ``port`` with their original timing (scaled by ``rate``)."""

    def __init__(self, port: Port, bag: BagReader, options: PlayOptions | None = None) -> None:
        self.port, self.bag = port, bag
        self.opt = opt = options or PlayOptions()
        if not opt.rate > 0:
            raise ValueError(f"rate must be > 0, got {opt.rate}")
        if opt.start_offset < 0 or opt.duration < 0:
            raise ValueError("start offset and duration must be >= 0")
        selected = list(bag.topics) if opt.topics is None else [t if t.startswith("/") else "/" + t for t in opt.topics]
        unknown = [t for t in selected if t not in bag.topics]
        if unknown:
            raise BagError(f"topic(s) {unknown} are not in bag {bag.path}; it has: {bag.describe()}")
        remap = {(k if k.startswith("/") else "/" + k): v for k, v in (opt.remap or {}).items()}
        bad = [k for k in remap if k not in bag.topics]
        if bad:
            raise BagError(f"remap of {bad}: no such topic in bag {bag.path}; it has: {bag.describe()}")
        self.skipped_types = sorted({bag.topics[t].msg_type for t in selected
                                     if bag.topics[t].msg_type not in types.typestore().fielddefs})
        self.publishers = {}
        self.out_names = {}
        for t in selected:
            msg_type = bag.topics[t].msg_type
            if msg_type not in types.typestore().fielddefs:
                continue
            out = remap.get(t, t)
            out = out if out.startswith("/") else "/" + out
            self.publishers[t] = port.publisher(out, msg_type, play_qos(msg_type, out))
            self.out_names[t] = out
        if self.skipped_types:
            log.warning("not playing topics of unknown types %s", self.skipped_types)
        self.published = 0

    def wait_for_subscribers(self) -> int:
        """Wait up to ``wait`` seconds for every publisher to be matched; returns how many are."""
        end = time.monotonic() + self.opt.wait
        matched = 0
        while time.monotonic() < end:
            matched = sum(1 for p in self.publishers.values() if p.subscription_count > 0)
            if matched == len(self.publishers):
                time.sleep(0.2)  # let discovery settle on the readers' side too
                break
            time.sleep(0.05)
        return matched

    def _restamp(self, msg: Any, shift: float) -> None:
        header = getattr(msg, "header", None)
        stamp = getattr(header, "stamp", None)
        if stamp is None or (stamp.sec == 0 and stamp.nanosec == 0):
            return  # zero stamps keep their meaning ("now")
        t = stamp.sec + stamp.nanosec * 1e-9 + shift
        sec = int(t // 1)
        stamp.sec, stamp.nanosec = sec, min(int(round((t - sec) * 1e9)), 999_999_999)

    def play_once(self, progress: bool = True, stop: threading.Event | None = None) -> int:
        from tqdm import tqdm

        opt = self.opt
        start_ns = self.bag.start_ns + int(opt.start_offset * 1e9)
        stop_ns = start_ns + int(opt.duration * 1e9) if opt.duration > 0 else None
        total = sum(self.bag.topics[t].count for t in self.publishers)
        bar = tqdm(total=total, desc="replay", unit="msg", disable=not progress, dynamic_ncols=True)
        t_wall0 = time.time()
        t_mono0 = time.monotonic()
        n = 0
        try:
            for topic, t_ns, raw in self.bag.messages(list(self.publishers), raw=True, start_ns=start_ns,
                                                      stop_ns=stop_ns):
                if stop is not None and stop.is_set():
                    break
                due = (t_ns - start_ns) * 1e-9 / opt.rate
                wait = due - (time.monotonic() - t_mono0)
                if wait > 0:
                    time.sleep(wait)
                msg = types.deserialize(raw, self.bag.topics[topic].msg_type)
                if opt.restamp:
                    # keep each stamp's distance to its bag time, moved to the time of playing
                    self._restamp(msg, (t_wall0 + due) - t_ns * 1e-9)
                self.publishers[topic].publish(msg)
                n += 1
                bar.update(1)
        finally:
            bar.close()
        self.published += n
        return n

    def run(self, progress: bool = True, stop: threading.Event | None = None) -> int:
        self.wait_for_subscribers()
        while True:
            self.play_once(progress, stop)
            if not self.opt.loop or (stop is not None and stop.is_set()):
                return self.published
