"""rosbag2 files: writing (mcap or sqlite3) and reading, with errors a person can act on.

Bags are written with the ``rosbags`` library: CDR bytes as ROS 2 puts them on the wire, plus the
message definitions of every topic (``ros2msg``, from the shared typestore, so ``vla_ros/msg``
types are described too and any ROS reader can decode them). Reading goes through rosbags'
AnyReader, which takes a bag's own definitions when it has them (mcap, sqlite3 from Iron on) and
the shared typestore when it does not (a Humble sqlite3 bag).

Bag format versions: rosbags writes rosbag2 metadata version 9 (Jazzy and newer) or 8. ROS 2
Humble's reader cannot parse version 9 metadata (its per-topic QoS is a YAML list there, a string
before); ``version=8`` writes what Humble parses.
"""
from __future__ import annotations

import shutil
import sqlite3
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

from ..transport import types

STORAGES = ("mcap", "sqlite3")
BAG_VERSIONS = (9, 8)
_PLUGINS = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


class BagError(ValueError):
    """A bag that cannot be written or read; the message says what and what to do."""


def ns(t: float) -> int:
    return int(round(t * 1e9))


def _qos(reliable: bool, depth: int, transient_local: bool = False) -> Qos:
    """A QoS profile as rosbag2 stores it in ``offered_qos_profiles``."""
    zero = QosTime(0, 0)
    return Qos(
        history=QosHistory.KEEP_LAST, depth=depth,
        reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
        durability=QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
        deadline=zero, lifespan=zero, liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=zero, avoid_ros_namespace_conventions=False,
    )


def offered_qos(msg_type: str, topic: str = "") -> Qos:
    """The QoS our publishers offer for a topic of ``msg_type`` (what ``ros2 bag play`` reuses)."""
    if msg_type in ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"):
        return _qos(False, 5)
    if msg_type == "std_msgs/msg/Bool" and topic.strip("/").endswith(("enable", "estop")):
        return _qos(True, 1, transient_local=True)
    return _qos(True, 10)


# -- writing ----------------------------------------------------------------------------------
class BagWriter:
    """A rosbag2 being written: ``add_topic`` then ``write`` CDR bytes (or ``write_msg``).

    The bag is valid once :meth:`close` returns (also from a ``with`` block, on Ctrl-C too);
    :meth:`abort` removes it. Topics are fully qualified names (``/joint_states``).
    """

    def __init__(self, path: str | Path, storage: str = "mcap", version: int = 9) -> None:
        if storage not in STORAGES:
            raise BagError(f"storage {storage!r} is not one of {', '.join(STORAGES)}")
        if version not in BAG_VERSIONS:
            raise BagError(f"bag version {version} is not one of {BAG_VERSIONS} "
                           "(9: Jazzy and newer, 8: also Humble)")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"{self.path} exists already; choose another output (bags are never overwritten)")
        self.storage = storage
        self._writer = Writer(self.path, version=version, storage_plugin=_PLUGINS[storage])
        try:
            self._writer.open()
        except (WriterError, OSError) as exc:
            raise BagError(f"cannot create bag {self.path}: {exc}") from None
        self._conns: dict[str, Any] = {}
        self.types: dict[str, str] = {}
        self.counts: dict[str, int] = {}
        self.closed = False

    def add_topic(self, topic: str, msg_type: str, qos: Qos | None = None) -> None:
        if topic in self._conns:
            if self.types[topic] != msg_type:
                raise BagError(f"topic {topic} is already in the bag as {self.types[topic]}, not {msg_type}")
            return
        types.msg_class(msg_type)  # a helpful error for unknown types
        self._conns[topic] = self._writer.add_connection(
            topic, msg_type, typestore=types.typestore(),
            offered_qos_profiles=[qos or offered_qos(msg_type, topic)])
        self.types[topic] = msg_type
        self.counts[topic] = 0

    def write(self, topic: str, t_ns: int, data: bytes | memoryview) -> None:
        self._writer.write(self._conns[topic], int(t_ns), data)
        self.counts[topic] += 1

    def write_msg(self, topic: str, t_ns: int, msg: Any) -> None:
        self.write(topic, t_ns, types.serialize(msg, self.types[topic]))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._writer.close()

    def abort(self) -> None:
        """Drop the bag (nothing half-written is left behind)."""
        if not self.closed:
            self.closed = True
            try:
                self._writer.abort()
            finally:
                shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None or issubclass(exc_type, KeyboardInterrupt):
            self.close()  # Ctrl-C: what was recorded is kept, as a valid bag
        else:
            self.abort()


# -- reading ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TopicInfo:
    name: str
    msg_type: str
    count: int


_READ_ERRORS = (AnyReaderError, sqlite3.DatabaseError, struct.error, EOFError, OSError, ValueError,
                AssertionError, KeyError, IndexError)


def _storage_files(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.suffix in (".mcap", ".db3")) if path.is_dir() else [path]


def _mcap_scan(path: Path) -> tuple[int, int, int, str]:
    """(messages, last log time ns, bytes read, problem) of an mcap file read record by record."""
    from mcap.stream_reader import StreamReader
    from mcap.records import Message

    count, last, problem = 0, 0, ""
    with open(path, "rb") as f:
        reader = StreamReader(f, skip_magic=False, emit_chunks=False)
        try:
            for record in reader.records:
                if isinstance(record, Message):
                    count += 1
                    last = max(last, record.log_time)
        except Exception as exc:  # the point where the file stops making sense
            problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        pos = f.tell()
    return count, last, pos, problem


class BagReader:
    """A rosbag2 (directory, or a single .mcap / .db3 file) opened for reading.

    ``messages`` yields ``(topic, bag time ns, message)`` in bag-time order (``raw=True``: CDR
    bytes instead of the message). A bag that breaks while being read raises :class:`BagError`
    saying how many messages, and how far into the bag, were read.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"bag {self.path} does not exist")
        try:
            self._reader = AnyReader([self.path], default_typestore=types.typestore())
            self._reader.open()
        except FileNotFoundError as exc:
            raise BagError(f"{self.path} is not a rosbag2: {exc} (a bag is a directory with "
                           "metadata.yaml and its .mcap/.db3 file, or a single .mcap/.db3 file)") from None
        except _READ_ERRORS as exc:
            raise BagError(self._open_problem(exc)) from None
        self.topics = {name: TopicInfo(name, info.msgtype or "", info.msgcount)
                       for name, info in self._reader.topics.items()}
        self.start_ns = self._reader.start_time if self._reader.message_count else 0
        self.end_ns = self._reader.end_time if self._reader.message_count else 0
        self.message_count = self._reader.message_count
        self.read_count = 0
        self.last_ns = 0

    def _open_problem(self, exc: BaseException) -> str:
        what = f"cannot open bag {self.path}: {type(exc).__name__}: {str(exc).rstrip('.')}"
        for f in _storage_files(self.path):
            if f.suffix == ".mcap":
                try:
                    count, last, pos, problem = _mcap_scan(f)
                except Exception:  # noqa: BLE001 - the scan only adds detail
                    continue
                size = f.stat().st_size
                if problem or pos < size:
                    where = (f"it ends after {size} bytes in the middle of a record" if pos >= size
                             else f"it stops making sense at byte {pos} of {size}")
                    return (f"{what}. {f.name} is truncated or corrupt: {where}; read {count} complete "
                            f"message(s) before it ({problem or 'no summary/footer'}). "
                            "Recover what is there with `mcap recover` (or `ros2 bag reindex` for a "
                            "missing metadata.yaml), or re-record")
                return (f"{what}. {f.name} reads to the end ({count} messages) but its index or "
                        "footer is damaged; try `mcap recover`")
            if f.suffix == ".db3":
                return (f"{what}. {f.name} is not a readable SQLite database "
                        f"({f.stat().st_size} bytes); it may be truncated or corrupt")
        return what

    # -- queries ------------------------------------------------------------------------------
    @property
    def duration(self) -> float:
        return max(0, self.end_ns - self.start_ns) * 1e-9

    def describe(self) -> str:
        """One line per topic: name, type, count (for errors that list what the bag has)."""
        return "; ".join(f"{t.name} [{t.msg_type}] x{t.count}" for t in sorted(self.topics.values(), key=lambda t: t.name))

    def topic_of_type(self, *msg_types: str) -> list[str]:
        return sorted(t.name for t in self.topics.values() if t.msg_type in msg_types)

    def messages(self, topics: Iterable[str] | None = None, raw: bool = False,
                 start_ns: int | None = None, stop_ns: int | None = None) -> Iterator[tuple[str, int, Any]]:
        wanted = None if topics is None else set(topics)
        conns = [c for c in self._reader.connections if wanted is None or c.topic in wanted]
        if wanted is not None and not conns:
            return
        self.read_count, self.last_ns = 0, 0
        it = self._reader.messages(connections=conns, start=start_ns, stop=stop_ns)
        while True:
            try:
                conn, t_ns, data = next(it)
                msg = data if raw else self._reader.deserialize(data, conn.msgtype)
            except StopIteration:
                return
            except _READ_ERRORS as exc:
                done = (self.last_ns - self.start_ns) * 1e-9 if self.last_ns else 0.0
                raise BagError(
                    f"bag {self.path} is truncated or corrupt: read {self.read_count} of "
                    f"{self.message_count} messages ({done:.2f} s of {self.duration:.2f} s) before "
                    f"{type(exc).__name__}: {exc}. Re-record, or recover the readable part "
                    "(`mcap recover`, or copy the messages up to that time)") from None
            self.read_count += 1
            self.last_ns = t_ns
            yield conn.topic, t_ns, msg

    def deserialize(self, data: bytes | memoryview, msg_type: str) -> Any:
        return self._reader.deserialize(data, msg_type)

    def close(self) -> None:
        try:
            self._reader.close()
        except Exception:  # noqa: BLE001 - closing a broken bag
            pass

    def __enter__(self) -> "BagReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
