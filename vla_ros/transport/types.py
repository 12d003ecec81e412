"""Message layouts from one source: the rosbags typestore.

The standard ROS 2 definitions (Humble's, which Jazzy keeps for every type we use) plus our own
``msg/*.msg`` files are registered in one typestore; the dds and inproc backends, bag I/O and the
tests all use it, so bags, DDS and ROS agree byte for byte.

Messages are the typestore's dataclasses. :func:`new` builds one with ROS defaults for the fields
not given (zeros, empty strings and sequences, nested defaults), like rclpy message constructors.
"""
from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

import numpy as np
from rosbags.interfaces import Nodetype
from rosbags.typesys import Stores, get_typestore, get_types_from_msg
from rosbags.typesys.store import Typestore

from ..paths import msg_dir

PACKAGE = "vla_ros"

_NUMPY = {
    "bool": np.bool_, "byte": np.uint8, "char": np.uint8, "int8": np.int8, "uint8": np.uint8,
    "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32,
    "int64": np.int64, "uint64": np.uint64, "float32": np.float32, "float64": np.float64,
}
_lock = threading.Lock()
_extra: dict[str, str] = {}

#: Message definitions of other packages the robot drivers speak, registered with ours so the dds
#: and inproc backends (and bags) can carry them without those packages. On ROS 2 (rclpy backend)
#: the packages themselves are used. Field layouts as published by the package authors:
#: interbotix_xs_msgs from Interbotix/interbotix_ros_core (interbotix_ros_xseries/
#: interbotix_xs_msgs/msg/*.msg, identical on the humble, jazzy and main branches).
THIRD_PARTY_DEFINITIONS: dict[str, str] = {
    "interbotix_xs_msgs/msg/JointGroupCommand": (
        "# Command the joints of a joint group (positions in radians in 'position' mode)\n"
        "string name\n"
        "float32[] cmd\n"
    ),
    "interbotix_xs_msgs/msg/JointSingleCommand": (
        "# Command one joint (a position in radians in 'position' mode)\n"
        "string name\n"
        "float32 cmd\n"
    ),
}


def own_definitions() -> dict[str, str]:
    """``{'vla_ros/msg/ActionChunk': text, ...}`` from the package's msg/ directory."""
    return {f"{PACKAGE}/msg/{p.stem}": p.read_text() for p in sorted(msg_dir().glob("*.msg"))}


@lru_cache(maxsize=1)
def typestore() -> Typestore:
    """The shared typestore: ROS 2 standard types + vla_ros messages."""
    store = get_typestore(Stores.ROS2_HUMBLE)
    types: dict[str, Any] = {}
    for name, text in {**THIRD_PARTY_DEFINITIONS, **own_definitions()}.items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store


def register_msg(name: str, text: str) -> None:
    """Register another package's ``.msg`` definition (e.g. interbotix_xs_msgs) at run time."""
    with _lock:
        store = typestore()
        if name in store.fielddefs:
            return
        store.register(get_types_from_msg(text, name))
        _extra[name] = text
        _default_factory.cache_clear()


def msg_class(msg_type: str) -> type:
    try:
        return typestore().types[msg_type]
    except KeyError:
        raise KeyError(
            f"unknown message type {msg_type!r}; expected a ROS 2 name such as 'sensor_msgs/msg/Image'"
        ) from None


def _default(desc: tuple) -> Any:
    kind, detail = desc
    if kind == Nodetype.BASE:
        base = detail[0]
        if base == "string":
            return ""
        if base == "bool":
            return False
        if base in ("float32", "float64"):
            return 0.0
        return 0
    if kind == Nodetype.NAME:
        return new(detail)
    if kind == Nodetype.ARRAY:
        (sub, n) = detail
        if sub[0] == Nodetype.BASE and sub[1][0] in _NUMPY:
            return np.zeros(n, dtype=_NUMPY[sub[1][0]])
        return [_default(sub) for _ in range(n)]
    if kind == Nodetype.SEQUENCE:
        sub = detail[0]
        if sub[0] == Nodetype.BASE and sub[1][0] in _NUMPY:
            return np.zeros(0, dtype=_NUMPY[sub[1][0]])
        return []
    raise TypeError(f"unsupported field description {desc!r}")


@lru_cache(maxsize=None)
def _default_factory(msg_type: str) -> tuple[type, tuple[tuple[str, tuple], ...], dict[str, Any]]:
    store = typestore()
    _, fields = store.fielddefs[msg_type]
    numeric = {}
    for fname, desc in fields:
        kind, detail = desc
        if kind in (Nodetype.ARRAY, Nodetype.SEQUENCE):
            sub = detail[0]
            if sub[0] == Nodetype.BASE and sub[1][0] in _NUMPY:
                numeric[fname] = _NUMPY[sub[1][0]]
    return store.types[msg_type], tuple(fields), numeric


def new(msg_type: str, **fields: Any) -> Any:
    """A ``msg_type`` message; fields not given take ROS defaults. Numeric sequences given as
    lists are converted to numpy arrays of the field's type (what the CDR serializer expects)."""
    try:
        cls, fdefs, numeric = _default_factory(msg_type)
    except KeyError:
        msg_class(msg_type)  # raises the helpful error
        raise
    names = {f for f, _ in fdefs}
    unknown = set(fields) - names
    if unknown:
        raise TypeError(f"{msg_type} has no field(s) {sorted(unknown)}; fields: {sorted(names)}")
    kwargs = {}
    for fname, desc in fdefs:
        if fname in fields:
            value = fields[fname]
            if fname in numeric and not (isinstance(value, np.ndarray) and value.dtype == numeric[fname]):
                value = np.asarray(value, dtype=numeric[fname])
            kwargs[fname] = value
        else:
            kwargs[fname] = _default(desc)
    return cls(**kwargs)


def serialize(msg: Any, msg_type: str) -> memoryview:
    """CDR (little endian, with the 4-byte encapsulation header) bytes of ``msg``."""
    return typestore().serialize_cdr(msg, msg_type, little_endian=True)


def deserialize(data: bytes | memoryview, msg_type: str) -> Any:
    return typestore().deserialize_cdr(data, msg_type)


def stamp_to_sec(stamp: Any) -> float:
    """Seconds of a builtin_interfaces/Time (any backend's)."""
    return stamp.sec + stamp.nanosec * 1e-9
