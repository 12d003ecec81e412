"""Cyclone DDS backend: ROS 2 nodes without ROS, on the ROS 2 wire format.

A :class:`DdsPort` speaks DDS through the PyPI ``cyclonedds`` package the way ``rmw_cyclonedds_cpp``
does, so a ROS 2 system on Cyclone DDS sees and uses the same topics:

- topic ``/vla/instruction`` is the DDS topic ``rt/vla/instruction``;
- message ``sensor_msgs/msg/Image`` is the DDS type ``sensor_msgs::msg::dds_::Image_``, keyless,
  final, serialized as XCDR1 (classic CDR) little endian;
- the bytes on the wire are the rosbags typestore's CDR serialization of the message
  (:func:`vla_ros.transport.types.serialize`, padded to a multiple of 4 as DDS requires), and
  received bytes are decoded with :func:`vla_ros.transport.types.deserialize`. Cyclone is
  given an IDL type built from the same typestore definitions (:func:`idl_type`) only so that it
  can describe the type in discovery and check the bytes it is handed; the Python
  (de)serializer of the ``cyclonedds`` package is never used.

All ports of a process share one DomainParticipant (domain ``$ROS_DOMAIN_ID``, default 0).
Each port owns an :class:`~vla_ros.transport.executor.Executor` (callbacks run on the thread that
spins) and, once it subscribes, a reader thread that blocks in a DDS WaitSet, takes raw samples
and liveliness changes, and posts the work to the executor. Nothing of ours runs on Cyclone's
own threads.

Liveliness: a publisher whose QoS has ``liveliness_lease > 0`` offers AUTOMATIC liveliness with
that lease; a subscriber requests an infinite lease (so it matches any ROS 2 publisher) and
calls ``on_liveliness_lost`` when the number of alive matched writers drops to zero: at once when
a writer is deleted or its process exits cleanly, and about one lease after a writer's process
dies without saying goodbye (SIGKILL, power loss). Measured here (bench/transport_latency.py
--liveliness, loopback profile, 2-core machine), lease 20 ms: lost 19-21 ms after SIGKILL,
0.6-2 ms after a clean exit (also when the program forgot shutdown(): an atexit hook does it).
Without a lease a SIGKILLed writer is noticed only when Cyclone's participant lease (10 s) ends.
A process starved of CPU for most of a lease still looks dead for a moment; see
LIVELINESS_PACING for what this module does about it.

Throughput: a 640x480 rgb8 Image reaches a subscriber in another process in about 1.2-1.5 ms
(median; bench/transport_latency.py). The serialized bytes are built in a buffer the publisher
reuses; Cyclone copies them once on write and once more into the Python ``bytes`` the reader
takes, which the typestore then decodes without copying the pixel data.
"""
from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import time
import weakref
from collections import deque
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from cyclonedds._clayer import ddspy_take, ddspy_write
from cyclonedds.core import DDSException, DDSStatus, Entity, GuardCondition, ReadCondition, WaitSet
from cyclonedds.core import InstanceState, SampleState, ViewState
from cyclonedds.domain import DomainParticipant
from cyclonedds.idl import IdlStruct, make_idl_struct
from cyclonedds.idl import types as idl
from cyclonedds.pub import DataWriter
from cyclonedds.qos import Policy, Qos
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration
from rosbags.interfaces import Nodetype

from . import types
from .executor import Executor
from .params import Param
from .port import RELIABLE_QOS, Port, Publisher, QoS, Subscription, Timer

log = logging.getLogger(__name__)

#: How long a reliable publish may block on a full writer history before it gives up.
MAX_BLOCKING_TIME = 0.1
#: Cyclone asserts a process's AUTOMATIC liveliness with messages sent every 80% of the shortest
#: lease among its writers, leaving 20% of a lease as slack: a 4 ms scheduling hiccup with a
#: 20 ms lease makes a live publisher look dead. A hidden writer (no rt/ prefix, so ROS 2 tools
#: ignore it) offering 1/PACING of the shortest lease makes those messages go out PACING times as
#: often; the slack becomes ~80% of the lease, detection time is unchanged. Measured with 3 busy
#: loops on 2 cores, 20 ms lease, 20 s: 31-49 false "lost" events without, 1-5 with (pacing 4).
LIVELINESS_PACING = 4
PACER_TOPIC = "vla_ros_liveliness_pacer"
#: Samples taken from a reader per call.
_TAKE_BATCH = 64
_ANY_STATE = SampleState.Any | ViewState.Any | InstanceState.Any

# rosbags base type names -> IDL types, as rosidl maps .msg types to IDL (char -> uint8,
# byte -> octet).
_BASES: dict[str, Any] = {
    "bool": bool, "byte": idl.byte, "char": idl.uint8,
    "int8": idl.int8, "uint8": idl.uint8, "int16": idl.int16, "uint16": idl.uint16,
    "int32": idl.int32, "uint32": idl.uint32, "int64": idl.int64, "uint64": idl.uint64,
    "float32": idl.float32, "float64": idl.float64,
}


class DdsError(RuntimeError):
    """A DDS operation failed; the message says which and on what topic."""


# -- names ------------------------------------------------------------------------------------
def dds_type_name(msg_type: str) -> str:
    """``sensor_msgs/msg/Image`` -> ``sensor_msgs::msg::dds_::Image_`` (rmw_cyclonedds_cpp's name)."""
    parts = msg_type.split("/")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"message type {msg_type!r} is not of the form 'pkg/msg/Type'")
    pkg, kind, name = parts
    return f"{pkg}::{kind}::dds_::{name}_"


def dds_topic_name(topic: str) -> str:
    """Fully qualified ROS topic name ``/vla/instruction`` -> DDS topic ``rt/vla/instruction``."""
    if not topic.startswith("/"):
        raise ValueError(f"topic {topic!r} is not fully qualified (it must start with '/')")
    return "rt" + topic


# -- types ------------------------------------------------------------------------------------
def _idl_field(desc: tuple) -> Any:
    kind, detail = desc
    if kind == Nodetype.BASE:
        base, bound = detail
        if base == "string":
            return idl.bounded_str[bound] if bound else str
        if base in _BASES:
            return _BASES[base]
        raise TypeError(f"field type {base!r} is not supported by the dds transport")
    if kind == Nodetype.NAME:
        return idl_type(detail)
    if kind == Nodetype.ARRAY:
        sub, length = detail
        return idl.array[_idl_field(sub), length]
    if kind == Nodetype.SEQUENCE:
        sub, bound = detail
        return idl.sequence[_idl_field(sub), bound] if bound else idl.sequence[_idl_field(sub)]
    raise TypeError(f"unsupported field description {desc!r}")


@lru_cache(maxsize=None)
def idl_type(msg_type: str) -> type[IdlStruct]:
    """The IDL struct Cyclone is told about for ``msg_type``, from the typestore's definition.

    Only its layout matters (Cyclone derives the XTypes type information sent in discovery from
    it and checks written bytes against it); samples never go through its Python serializer.
    """
    types.msg_class(msg_type)  # a helpful error for unknown names
    _, fields = types.typestore().fielddefs[msg_type]
    members = {name: _idl_field(desc) for name, desc in fields}
    class_name = dds_type_name(msg_type).replace("::", "_")
    return make_idl_struct(class_name, dds_type_name(msg_type), members, dataclassify=False)


def serialize(msg: Any, msg_type: str, buffer: bytearray | None = None) -> memoryview:
    """The sample's wire bytes: the typestore's little-endian CDR (what :func:`types.serialize`
    returns) followed by 0-3 zero bytes to a multiple of 4, their count in the encapsulation
    options (DDS-XTypes 7.6.3.1.2). Serialized once, straight into the final buffer: ``buffer``
    when given (grown as needed; reusing one saves allocating and faulting in a fresh megabyte
    per image), else a new one. The result is a view on that buffer."""
    store = types.typestore()
    msgdef = store.get_msgdef(msg_type)
    size = 4 + msgdef.getsize_cdr(0, msg, store)
    total = size + (-size % 4)
    if buffer is None:
        buffer = bytearray(total)
    else:
        if len(buffer) < total:
            buffer.extend(bytes(total - len(buffer)))
        np.frombuffer(buffer, np.uint8, total)[:] = 0  # same bytes as a fresh buffer
    view = memoryview(buffer)[:total]
    view[1] = 1  # CDR_LE
    view[3] = total - size
    end = msgdef.serialize_cdr_le(view[4:], 0, msg, store)
    assert end + 4 == size
    return view


def _coerce_arrays(msg: Any, msg_type: str) -> None:
    """Turn numeric sequences given as lists (or array.array, ...) into numpy arrays of the
    field's type, in place and recursively: what the CDR serializer needs. Node code may assign
    plain lists after building a message; the inproc backend never notices."""
    _, fields = types.typestore().fielddefs[msg_type]
    for name, (kind, detail) in fields:
        value = getattr(msg, name)
        if kind == Nodetype.NAME:
            _coerce_arrays(value, detail)
        elif kind in (Nodetype.ARRAY, Nodetype.SEQUENCE):
            sub_kind, sub_detail = detail[0]
            if sub_kind == Nodetype.BASE and sub_detail[0] in types._NUMPY:
                dtype = types._NUMPY[sub_detail[0]]
                if not (isinstance(value, np.ndarray) and value.dtype == dtype):
                    setattr(msg, name, np.asarray(value, dtype=dtype))
            elif sub_kind == Nodetype.NAME:
                for item in value:
                    _coerce_arrays(item, sub_detail)


# -- the process-wide participant --------------------------------------------------------------
class _Domain:
    """One DomainParticipant per process, shared by its ports, deleted with the last one."""

    lock = threading.Lock()
    participant: DomainParticipant | None = None
    topics: dict[str, tuple[Topic, str]] = {}
    users = 0
    pacer: tuple[float, DataWriter] | None = None

    @classmethod
    def acquire(cls) -> DomainParticipant:
        with cls.lock:
            if cls.participant is None:
                domain = domain_id()
                try:
                    cls.participant = DomainParticipant(domain)
                except DDSException as exc:
                    uri = os.environ.get("CYCLONEDDS_URI", "")
                    raise DdsError(
                        f"cannot join DDS domain {domain}: {exc}. Check CYCLONEDDS_URI "
                        f"({uri or 'not set: Cyclone defaults'}); vla_ros.transport.dds_env."
                        "loopback_env() gives a loopback-only profile"
                    ) from None
                cls.topics = {}
            cls.users += 1
            return cls.participant

    @classmethod
    def release(cls) -> None:
        with cls.lock:
            cls.users -= 1
            if cls.users == 0 and cls.participant is not None:
                if cls.pacer is not None:
                    _delete(cls.pacer[1])
                    cls.pacer = None
                for topic, _ in cls.topics.values():  # their readers and writers are gone
                    _delete(topic)
                _delete(cls.participant)
                cls.participant = None
                cls.topics = {}

    @classmethod
    def topic(cls, name: str, msg_type: str) -> Topic:
        with cls.lock:
            known = cls.topics.get(name)
            if known is not None:
                if known[1] != msg_type:
                    raise DdsError(
                        f"topic {name!r} is already used with type {known[1]} in this process; "
                        f"it cannot also carry {msg_type}"
                    )
                return known[0]
            try:
                topic = Topic(cls.participant, name, idl_type(msg_type))
            except DDSException as exc:
                raise DdsError(f"cannot create DDS topic {name!r} of type {msg_type}: {exc}") from None
            cls.topics[name] = (topic, msg_type)
            return topic


    @classmethod
    def pace(cls, lease: float) -> None:
        """Make the liveliness of this process's writers with ``lease`` robust (see
        LIVELINESS_PACING)."""
        period = lease / LIVELINESS_PACING
        with cls.lock:
            if cls.pacer is not None and cls.pacer[0] <= period:
                return
        topic = cls.topic(PACER_TOPIC, "std_msgs/msg/Empty")
        qos = Qos(Policy.Reliability.BestEffort, Policy.Liveliness.Automatic(duration(seconds=period)))
        writer = DataWriter(cls.participant, topic, qos)
        with cls.lock:
            if cls.pacer is not None and cls.pacer[0] <= period:  # another thread was first
                old = (period, writer)
            else:
                old, cls.pacer = cls.pacer, (period, writer)
        if old is not None:
            _delete(old[1])


def domain_id() -> int:
    """``$ROS_DOMAIN_ID`` (0 when unset), as ROS 2 uses it."""
    raw = os.environ.get("ROS_DOMAIN_ID", "").strip()
    if not raw:
        return 0
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= 232:
        raise ValueError(f"ROS_DOMAIN_ID={raw!r} is not a domain id (an integer from 0 to 232)")
    return value


def _delete(entity: Entity) -> None:
    """Delete a DDS entity now rather than when Python collects the wrapper."""
    if Entity._entities.pop(entity._ref, None) is not None:
        entity._delete(entity._ref)


def _dds_qos(qos: QoS, writer: bool) -> Qos:
    """ROS 2 QoS -> DDS QoS, as rmw_cyclonedds_cpp maps it (plus XCDR1 only)."""
    if qos.depth < 1:
        raise ValueError(f"QoS depth must be >= 1, got {qos.depth}")
    policies = [
        Policy.Reliability.Reliable(duration(seconds=MAX_BLOCKING_TIME))
        if qos.reliable else Policy.Reliability.BestEffort,
        Policy.History.KeepLast(qos.depth),
        Policy.Durability.TransientLocal if qos.transient_local else Policy.Durability.Volatile,
        Policy.DataRepresentation(use_cdrv0_representation=True),
    ]
    if writer and qos.liveliness_lease > 0:
        policies.append(Policy.Liveliness.Automatic(duration(seconds=qos.liveliness_lease)))
    else:
        # Readers request an infinite lease: it matches every writer, whatever it offers, and
        # the writers' own leases still drive liveliness changes.
        policies.append(Policy.Liveliness.Automatic(duration(infinite=True)))
    return Qos(*policies)


# -- publisher / subscription / timer ----------------------------------------------------------
class _DdsPublisher(Publisher):
    def __init__(self, port: "DdsPort", topic: str, msg_type: str, qos: QoS) -> None:
        self.port, self.topic, self.msg_type, self.qos = port, topic, msg_type, qos
        dds_topic = _Domain.topic(dds_topic_name(topic), msg_type)
        try:
            self.writer = DataWriter(port.participant, dds_topic, _dds_qos(qos, writer=True))
            if qos.liveliness_lease > 0:
                _Domain.pace(qos.liveliness_lease)
        except DDSException as exc:
            raise DdsError(f"cannot create a DDS writer on {topic}: {exc}") from None
        self.closed = False
        self._buffer = bytearray()  # reused serialization buffer (publish is not re-entrant)
        self._lock = threading.Lock()

    def publish(self, msg: Any) -> None:
        if getattr(msg, "__msgtype__", self.msg_type) != self.msg_type:
            raise TypeError(f"{self.topic}: expected {self.msg_type}, got {msg.__msgtype__}")
        with self._lock:  # Cyclone copies the bytes; the buffer is free again on return
            if self.closed:
                raise RuntimeError(f"publisher on {self.topic} is shut down")
            try:
                data = serialize(msg, self.msg_type, self._buffer)
            except Exception:
                data = self._serialize_coerced(msg)
            try:
                ret = ddspy_write(self.writer._ref, data)
            finally:
                data.release()
        if ret == DDSException.DDS_RETCODE_TIMEOUT:
            self.port.warn_once(
                f"timeout:{self.topic}",
                f"{self.topic}: a reliable subscriber is not keeping up; dropped a message "
                f"after {MAX_BLOCKING_TIME} s (warned once)",
            )
        elif ret < 0:
            raise DdsError(f"publishing on {self.topic} failed: {DDSException(ret)}")

    def _serialize_coerced(self, msg: Any) -> memoryview:
        try:
            _coerce_arrays(msg, self.msg_type)
            return serialize(msg, self.msg_type, self._buffer)
        except Exception as exc:
            raise TypeError(
                f"{self.topic}: cannot serialize this {self.msg_type}: {type(exc).__name__}: "
                f"{exc}. Check the field types (build messages with port.new())"
            ) from None

    @property
    def subscription_count(self) -> int:
        if self.closed:
            return 0
        return len(self.writer.get_matched_subscriptions())

    def close(self) -> None:
        with self._lock:  # waits for a publish in flight on another thread
            if not self.closed:
                self.closed = True
                _delete(self.writer)


class _DdsSubscription(Subscription):
    """Raw samples wait in a bounded queue (the QoS depth, as in the reader's keep-last history)
    and are decoded and handed to the callback on the executor, one per executor turn."""

    def __init__(self, port, topic, msg_type, callback, qos, on_liveliness_lost,
                 on_liveliness_regained=None) -> None:
        self.port, self.topic, self.msg_type = port, topic, msg_type
        self.callback, self.qos, self.on_liveliness_lost = callback, qos, on_liveliness_lost
        self.on_liveliness_regained = on_liveliness_regained
        self._lost = False
        dds_topic = _Domain.topic(dds_topic_name(topic), msg_type)
        try:
            self.reader = DataReader(port.participant, dds_topic, _dds_qos(qos, writer=False))
        except DDSException as exc:
            raise DdsError(f"cannot create a DDS reader on {topic}: {exc}") from None
        self.reader.set_status_mask(DDSStatus.LivelinessChanged)
        self.data_condition = ReadCondition(self.reader, _ANY_STATE)
        self._pending: deque = deque(maxlen=qos.depth)
        self._lock = threading.Lock()
        self._scheduled = False
        self._alive = 0
        self.closed = False

    # reader thread ----------------------------------------------------------------------------
    def poll(self) -> None:
        """Take what arrived and note liveliness changes (reader thread)."""
        if self.closed:
            return
        while True:
            samples = ddspy_take(self.reader._ref, _ANY_STATE, _TAKE_BATCH)
            if isinstance(samples, int):
                raise DdsError(f"taking samples on {self.topic} failed: {DDSException(samples)}")
            valid = [data for data, info in samples if info.valid_data]
            if valid:
                with self._lock:
                    self._pending.extend(valid)
                    schedule = not self._scheduled
                    self._scheduled = True
                if schedule:
                    self.port.executor.post(self._deliver)
            if len(samples) < _TAKE_BATCH:
                break
        if self.reader.get_status_changes() & DDSStatus.LivelinessChanged:
            status = self.reader.get_liveliness_changed_status()
            was_alive, self._alive = self._alive, status.alive_count
            lost = status.alive_count == 0 and (was_alive > 0 or status.not_alive_count_change > 0)
            if lost:
                self._lost = True
                if self.on_liveliness_lost is not None:
                    self.port.executor.post(self._liveliness_lost)
            elif self._lost and status.alive_count > 0:
                self._lost = False
                if self.on_liveliness_regained is not None:
                    self.port.executor.post(self._liveliness_regained)

    # executor thread --------------------------------------------------------------------------
    def _deliver(self) -> None:
        with self._lock:
            if not self._pending or self.closed:
                self._scheduled = False
                return
            data = self._pending.popleft()
            more = bool(self._pending)
            if not more:
                self._scheduled = False
        if more:  # one message per turn, so timers and other topics interleave fairly
            self.port.executor.post(self._deliver)
        try:
            msg = types.deserialize(data, self.msg_type)
        except Exception as exc:
            self.port.warn_once(
                f"decode:{self.topic}",
                f"{self.topic}: dropped a sample that is not a valid {self.msg_type}: {exc} "
                "(warned once)",
            )
            return
        self.callback(msg)

    def _liveliness_lost(self) -> None:
        if not self.closed and self.on_liveliness_lost is not None:
            self.on_liveliness_lost()

    def _liveliness_regained(self) -> None:
        if not self.closed and self.on_liveliness_regained is not None:
            self.on_liveliness_regained()

    @property
    def publisher_count(self) -> int:
        if self.closed:
            return 0
        return len(self.reader.get_matched_publications())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            _delete(self.data_condition)
            _delete(self.reader)


class _DdsTimer(Timer):
    def __init__(self, timer) -> None:
        self._timer = timer

    def cancel(self) -> None:
        self._timer.cancel()


# -- the port ----------------------------------------------------------------------------------
class DdsPort(Port):
    backend = "dds"

    def __init__(
        self,
        node_name: str,
        namespace: str = "",
        parameters: Mapping[str, Any] | None = None,
        remappings: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(node_name, namespace)
        self.executor = Executor()
        self._params = dict(parameters or {})
        self._remap = {self.resolve(k): self.resolve(v) for k, v in (remappings or {}).items()}
        self._pubs: list[_DdsPublisher] = []
        self._subs: list[_DdsSubscription] = []
        self._lock = threading.Lock()
        self._closed = False
        self.participant = _Domain.acquire()
        _LIVE_PORTS.add(self)
        self._waitset: WaitSet | None = None
        self._guard: GuardCondition | None = None
        self._thread: threading.Thread | None = None

    def _topic(self, topic: str) -> str:
        name = self.resolve(topic)
        return self._remap.get(name, name)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"node {self.node_name!r} is shut down")

    def _raw_parameters(self, specs: list[Param]) -> Mapping[str, Any]:
        return self._params

    def new(self, msg_type: str, **fields: Any) -> Any:
        return types.new(msg_type, **fields)

    def publisher(self, topic: str, msg_type: str, qos: QoS = RELIABLE_QOS) -> Publisher:
        self._check_open()
        pub = _DdsPublisher(self, self._topic(topic), msg_type, qos)
        self._pubs.append(pub)
        return pub

    def subscribe(self, topic, msg_type, callback, qos=RELIABLE_QOS, on_liveliness_lost=None,
                  on_liveliness_regained=None):
        self._check_open()
        sub = _DdsSubscription(self, self._topic(topic), msg_type, callback, qos, on_liveliness_lost,
                                 on_liveliness_regained)
        with self._lock:
            self._subs.append(sub)
            self._start_reader_thread()
            self._waitset.attach(sub.data_condition)
            self._waitset.attach(sub.reader)  # its status condition: liveliness changes
        self._guard.set(True)  # the reader thread polls the new reader once
        return sub

    def timer(self, period: float, callback: Callable[[], None]) -> Timer:
        self._check_open()
        return _DdsTimer(self.executor.add_timer(period, callback))

    def call_soon(self, callback: Callable[[], None]) -> None:
        self.executor.post(callback)

    def now(self) -> float:
        return time.time()

    # -- the reader thread ---------------------------------------------------------------------
    def _start_reader_thread(self) -> None:
        if self._thread is not None:
            return
        self._waitset = WaitSet(self.participant)
        self._guard = GuardCondition(self.participant)
        self._waitset.attach(self._guard)
        self._thread = threading.Thread(
            target=self._read_loop, name=f"dds-reader-{self.node_name}", daemon=True
        )
        self._thread.start()

    def _read_loop(self) -> None:
        while not self._closed:
            try:
                self._waitset.wait(duration(seconds=1))
                self._guard.take()
                with self._lock:
                    subs = list(self._subs)
                for sub in subs:
                    sub.poll()
            except Exception:
                if self._closed:
                    return
                log.exception("%s: DDS reader thread error", self.node_name)
                time.sleep(0.1)

    # -- life cycle ----------------------------------------------------------------------------
    def spin(self) -> None:
        with _stop_on_signals(self.executor):
            self.executor.spin()

    def spin_once(self, timeout: float = 0.0) -> None:
        self.executor.spin_once(timeout)

    def spin_for(self, duration_s: float) -> None:
        self.executor.spin_for(duration_s)

    def shutdown(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.executor.stop()
        if self._thread is not None:
            self._guard.set(True)
            if self._thread is not threading.current_thread():
                self._thread.join(timeout=5.0)
        for sub in self._subs:
            sub.close()
        for pub in self._pubs:
            pub.close()
        for entity in (self._waitset, self._guard):
            if entity is not None:
                _delete(entity)
        _LIVE_PORTS.discard(self)
        _Domain.release()


_LIVE_PORTS: "weakref.WeakSet[DdsPort]" = weakref.WeakSet()


@atexit.register
def _shutdown_live_ports() -> None:
    """Ports a program forgot to shut down say goodbye at exit (peers see a clean exit, not a
    lapsed lease)."""
    for port in list(_LIVE_PORTS):
        try:
            port.shutdown()
        except Exception:  # exiting anyway
            pass


@contextmanager
def _stop_on_signals(executor: Executor) -> Iterator[None]:
    """SIGINT and SIGTERM stop ``executor`` (so spin() returns) while in this block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handler(signum, frame):
        executor.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
