"""rclpy backend: the port as an ordinary ROS 2 node (Humble, Jazzy).

rclpy is imported lazily, inside :class:`RclpyPort`, so this module imports on machines without
ROS 2; constructing a port there raises :class:`RclpyUnavailable` with what to do instead.

Mapping of the port onto rclpy:

- one ``rclpy.init(args=argv)`` per process (so ``--ros-args`` remaps and parameters apply) and
  one ``rclpy.node.Node`` per port, spun by a ``SingleThreadedExecutor``;
- messages are the generated rclpy classes, found from their ROS names
  (``sensor_msgs/msg/Image`` -> ``sensor_msgs.msg.Image``); :meth:`RclpyPort.new` converts field
  values to what the generated setters accept (numpy arrays -> ``array.array`` for sequences,
  numpy scalars -> ``float``/``int``), because those setters reject numpy types;
- :class:`~vla_ros.transport.port.QoS` -> ``QoSProfile`` (keep last ``depth``; reliable or best
  effort; volatile or transient local; automatic liveliness with the lease when one is set);
- ``on_liveliness_lost`` -> a liveliness-changed event callback that fires when the number of
  alive publishers drops to zero;
- ``call_soon`` -> a queue drained by a guard condition's callback;
- parameters are declared with a descriptor (description, type, constraints), read-only because
  nodes read them once at start; they are dynamically typed so that ``rate:=30`` for a float
  parameter is accepted and :func:`~vla_ros.transport.params.validate` types and checks every
  value the same way on all backends.

Callback exceptions are logged and swallowed, as on the other backends: one bad message must
not stop a node.
"""
from __future__ import annotations

import array
import importlib
import logging
import threading
from collections import deque
from typing import Any, Callable, Mapping

from .params import Param
from .port import RELIABLE_QOS, Port, Publisher, QoS, Subscription, Timer

UNAVAILABLE = "rclpy is not available; source your ROS 2 setup or set VLA_ROS_TRANSPORT=dds"

log = logging.getLogger(__name__)


class RclpyUnavailable(ImportError):
    """rclpy cannot be imported in this Python."""


def _import_rclpy():
    try:
        import rclpy  # noqa: F401
        import rclpy.executors  # noqa: F401
        import rclpy.node  # noqa: F401
        import rclpy.qos  # noqa: F401
    except ImportError as exc:
        raise RclpyUnavailable(f"{UNAVAILABLE} ({exc})") from None
    return rclpy


# ---------------------------------------------------------------------------------------------
# Message classes and field conversion
# ---------------------------------------------------------------------------------------------

#: rosidl basic types stored as array.array in sequences / numpy in fixed arrays (rosidl_generator_py).
_TYPECODES = {
    "float": "f", "double": "d", "int8": "b", "uint8": "B", "int16": "h", "uint16": "H",
    "int32": "i", "uint32": "I", "int64": "q", "uint64": "Q",
}
_DTYPES = {
    "float": "float32", "double": "float64", "int8": "int8", "uint8": "uint8", "int16": "int16",
    "uint16": "uint16", "int32": "int32", "uint32": "uint32", "int64": "int64", "uint64": "uint64",
}
_FLOATS = ("float", "double")

_class_cache: dict[str, tuple[type, dict[str, str]]] = {}


def message_class(msg_type: str) -> tuple[type, dict[str, str]]:
    """(generated class, {field: rosidl type}) of ``pkg/msg/Type`` (``pkg/Type`` accepted)."""
    cached = _class_cache.get(msg_type)
    if cached is not None:
        return cached
    parts = msg_type.split("/")
    if len(parts) == 2:
        pkg, kind, name = parts[0], "msg", parts[1]
    elif len(parts) == 3:
        pkg, kind, name = parts
    else:
        raise KeyError(
            f"unknown message type {msg_type!r}; expected a ROS 2 name such as 'sensor_msgs/msg/Image'"
        )
    try:
        module = importlib.import_module(f"{pkg}.{kind}")
    except ImportError as exc:
        if pkg == "vla_ros":
            hint = ("build the workspace with `colcon build` and `source install/setup.bash` "
                    "(the vla_ros messages are generated at build time)")
        else:
            hint = f"install the ROS 2 package {pkg} (e.g. ros-$ROS_DISTRO-{pkg.replace('_', '-')})"
        raise KeyError(f"message type {msg_type!r} is not available to rclpy ({exc}); {hint}") from None
    cls = getattr(module, name, None)
    if cls is None:
        raise KeyError(f"message type {msg_type!r}: module {pkg}.{kind} has no {name}")
    cached = (cls, dict(cls.get_fields_and_field_types()))
    _class_cache[msg_type] = cached
    return cached


def _base_of_sequence(ftype: str) -> str:
    # 'sequence<float>' / 'sequence<float, 8>' -> 'float'
    return ftype[len("sequence<"):-1].split(",")[0].strip()


def _to_array(base: str, value: Any) -> Any:
    """A value for a sequence<base> field where base has an array.array type code."""
    typecode = _TYPECODES[base]
    if isinstance(value, array.array) and value.typecode == typecode:
        return value
    out = array.array(typecode)
    if isinstance(value, (bytes, bytearray)) and typecode == "B":
        out.frombytes(value)
        return out
    if isinstance(value, memoryview) and typecode == "B":
        out.frombytes(value.cast("B") if value.format != "B" else value)
        return out
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is an exec_depend
        np = None
    if np is not None and isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value, dtype=_DTYPES[base]).reshape(-1)
        out.frombytes(memoryview(arr).cast("B"))
        return out
    cast = float if base in _FLOATS else int
    out.extend(cast(v) for v in value)
    return out


def _convert_field(ftype: str, value: Any) -> Any:
    """``value`` in the form the generated setter for a field of rosidl type ``ftype`` accepts."""
    if ftype.startswith("sequence<"):
        base = _base_of_sequence(ftype)
        if base in _TYPECODES:
            return _to_array(base, value)
        if base == "boolean":
            return [bool(v) for v in value]
        if base.startswith(("string", "wstring")):
            return [str(v) for v in value]
        return list(value)
    if ftype.endswith("]"):  # fixed-size array: numpy for numeric types, list otherwise
        base = ftype[: ftype.index("[")]
        if base in _DTYPES:
            import numpy as np

            return np.asarray(value, dtype=_DTYPES[base]).reshape(-1)
        if base == "boolean":
            return [bool(v) for v in value]
        return list(value)
    if ftype in _FLOATS:
        return float(value)
    if ftype in _TYPECODES:
        return int(value)
    if ftype == "boolean":
        return bool(value)
    if ftype.startswith(("string", "wstring")):
        return value if isinstance(value, str) else str(value)
    return value  # nested message, octet, char


def new_message(msg_type: str, **fields: Any) -> Any:
    """An rclpy message of ``msg_type`` with ``fields`` set (converted as needed)."""
    cls, ftypes = message_class(msg_type)
    unknown = set(fields) - set(ftypes)
    if unknown:
        raise TypeError(f"{msg_type} has no field(s) {sorted(unknown)}; fields: {sorted(ftypes)}")
    msg = cls()
    for name, value in fields.items():
        setattr(msg, name, _convert_field(ftypes[name], value))
    return msg


# ---------------------------------------------------------------------------------------------
# QoS and parameters
# ---------------------------------------------------------------------------------------------


def qos_profile(qos: QoS) -> Any:
    """The rclpy ``QoSProfile`` of a port :class:`QoS`."""
    from rclpy.duration import Duration
    from rclpy.qos import (
        DurabilityPolicy,
        HistoryPolicy,
        LivelinessPolicy,
        QoSProfile,
        ReliabilityPolicy,
    )

    kwargs: dict[str, Any] = dict(
        history=HistoryPolicy.KEEP_LAST,
        depth=int(qos.depth),
        reliability=ReliabilityPolicy.RELIABLE if qos.reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=(
            DurabilityPolicy.TRANSIENT_LOCAL if qos.transient_local else DurabilityPolicy.VOLATILE
        ),
        liveliness=LivelinessPolicy.AUTOMATIC,
    )
    if qos.liveliness_lease > 0:
        kwargs["liveliness_lease_duration"] = Duration(seconds=float(qos.liveliness_lease))
    return QoSProfile(**kwargs)


def _ros_default(p: Param) -> Any:
    """``p.default`` as an rclpy parameter value (lists of one element type)."""
    value = p.default
    try:
        if p.type == "float":
            return float(value)
        if p.type == "int":
            return int(value)
        if p.type == "bool":
            return bool(value)
        if p.type == "str":
            return str(value)
        cast = {"float[]": float, "int[]": int, "str[]": str}[p.type]
        return [cast(v) for v in value]
    except (TypeError, ValueError, KeyError):
        return value


def _descriptor(p: Param) -> Any:
    from rcl_interfaces.msg import ParameterDescriptor

    constraints = [f"type {p.type}"]
    if p.choices is not None:
        constraints.append("one of " + ", ".join(map(str, p.choices)))
    if p.min is not None:
        constraints.append(f">= {p.min}")
    if p.max is not None:
        constraints.append(f"<= {p.max}")
    constraints.append("read at start; restart the node to change it")
    return ParameterDescriptor(
        name=p.name,
        description=p.description,
        additional_constraints="; ".join(constraints),
        read_only=True,
        dynamic_typing=True,
    )


def _plain(value: Any) -> Any:
    """rclpy parameter values as plain Python (array.array / tuples -> list)."""
    if isinstance(value, (array.array, tuple)):
        return list(value)
    return value


# ---------------------------------------------------------------------------------------------
# Port
# ---------------------------------------------------------------------------------------------


class _RosLogHandler(logging.Handler):
    """Forwards the port's Python logger to the node's rcutils logger (console and /rosout)."""

    def __init__(self, ros_logger: Any) -> None:
        super().__init__(logging.DEBUG)
        self.ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            level = record.levelno
            if level >= logging.CRITICAL:
                self.ros_logger.fatal(text)
            elif level >= logging.ERROR:
                self.ros_logger.error(text)
            elif level >= logging.WARNING:
                self.ros_logger.warning(text)
            elif level >= logging.INFO:
                self.ros_logger.info(text)
            else:
                self.ros_logger.debug(text)
        except Exception:  # never let logging break a callback
            self.handleError(record)


class _RclpyPublisher(Publisher):
    def __init__(self, pub: Any) -> None:
        self._pub = pub

    def publish(self, msg: Any) -> None:
        self._pub.publish(msg)

    @property
    def subscription_count(self) -> int:
        return self._pub.get_subscription_count()


class _RclpySubscription(Subscription):
    def __init__(self, node: Any, sub: Any) -> None:
        self._node, self._sub = node, sub

    @property
    def publisher_count(self) -> int:
        return self._node.count_publishers(self._sub.topic_name)


class _RclpyTimer(Timer):
    def __init__(self, node: Any, timer: Any) -> None:
        self._node, self._timer = node, timer

    def cancel(self) -> None:
        if self._timer is None:
            return
        timer, self._timer = self._timer, None
        timer.cancel()
        self._node.destroy_timer(timer)


_init_lock = threading.Lock()
_live_ports = 0
_we_initialized = False


class RclpyPort(Port):
    """The port on an rclpy node. ``argv`` (default ``sys.argv``) may carry ``--ros-args``."""

    backend = "rclpy"

    def __init__(self, node_name: str, namespace: str = "", argv: list[str] | None = None) -> None:
        super().__init__(node_name, namespace)
        rclpy = _import_rclpy()
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node

        global _live_ports, _we_initialized
        with _init_lock:
            if not rclpy.ok():
                rclpy.init(args=list(argv) if argv is not None else None)
                _we_initialized = True
            _live_ports += 1
        self._rclpy = rclpy
        self._closed = False
        self._destroyed = False
        self._spin_thread: int | None = None
        try:
            kwargs = {"namespace": "/" + self.namespace} if self.namespace else {}
            self._node = Node(node_name, **kwargs)
            # --ros-args -r __node:=... / __ns:=... may have renamed the node
            self.node_name = self._node.get_name()
            self.namespace = self._node.get_namespace().strip("/")
            self._pending: deque[Callable[[], None]] = deque()
            self._guard = self._node.create_guard_condition(self._run_pending)
            self._executor = SingleThreadedExecutor(context=self._node.context)
            self._executor.add_node(self._node)
        except BaseException:
            self._release_context()
            raise
        ros_logger = self._node.get_logger()
        self._log_handler = _RosLogHandler(ros_logger)
        self.logger.addHandler(self._log_handler)
        self.logger.propagate = False
        try:  # rcutils severities are Python's levels (DEBUG=10 ... FATAL=50); --log-level applies
            self.logger.setLevel(int(ros_logger.get_effective_level()) or logging.DEBUG)
        except Exception:
            self.logger.setLevel(logging.DEBUG)

    # -- helpers ------------------------------------------------------------------------------
    def _guarded(self, callback: Callable[..., None], what: str) -> Callable[..., None]:
        def run(*args: Any) -> None:
            try:
                callback(*args)
            except Exception:
                self.logger.exception("%s raised", what)

        return run

    def _run_pending(self) -> None:
        while True:
            try:
                callback = self._pending.popleft()
            except IndexError:
                return
            self._guarded(callback, f"call_soon callback {callback!r}")()

    # -- Port ---------------------------------------------------------------------------------
    def _raw_parameters(self, specs: list[Param]) -> Mapping[str, Any]:
        out: dict[str, Any] = {}
        for p in specs:
            if self._node.has_parameter(p.name):
                value = self._node.get_parameter(p.name).value
            else:
                value = self._node.declare_parameter(p.name, _ros_default(p), _descriptor(p)).value
            if value is not None:  # NOT_SET: validate() uses the default
                out[p.name] = _plain(value)
        return out

    def new(self, msg_type: str, **fields: Any) -> Any:
        return new_message(msg_type, **fields)

    def publisher(self, topic: str, msg_type: str, qos: QoS = RELIABLE_QOS) -> Publisher:
        cls, _ = message_class(msg_type)
        return _RclpyPublisher(self._node.create_publisher(cls, topic, qos_profile(qos)))

    def subscribe(
        self,
        topic: str,
        msg_type: str,
        callback: Callable[[Any], None],
        qos: QoS = RELIABLE_QOS,
        on_liveliness_lost: Callable[[], None] | None = None,
        on_liveliness_regained: Callable[[], None] | None = None,
    ) -> Subscription:
        cls, _ = message_class(msg_type)
        profile = qos_profile(qos)
        on_msg = self._guarded(callback, f"subscription callback on {topic}")
        if on_liveliness_lost is None and on_liveliness_regained is None:
            return _RclpySubscription(
                self._node, self._node.create_subscription(cls, topic, on_msg, profile)
            )
        try:  # Iron and later
            from rclpy.event_handler import SubscriptionEventCallbacks, UnsupportedEventTypeError
        except ImportError:  # Humble
            from rclpy.qos_event import SubscriptionEventCallbacks, UnsupportedEventTypeError
        lost = self._guarded(on_liveliness_lost or (lambda: None), f"liveliness callback on {topic}")
        regained = self._guarded(on_liveliness_regained or (lambda: None), f"liveliness callback on {topic}")

        def on_liveliness(info: Any) -> None:
            # rmw_liveliness_changed_status_t: the last alive publisher went away, or came back
            if info.alive_count == 0 and info.alive_count_change < 0:
                lost()
            elif info.alive_count > 0 and info.alive_count == info.alive_count_change:
                regained()

        try:
            sub = self._node.create_subscription(
                cls, topic, on_msg, profile,
                event_callbacks=SubscriptionEventCallbacks(liveliness=on_liveliness),
            )
        except UnsupportedEventTypeError:
            self.logger.warning(
                "%s: this RMW has no liveliness events; a publisher that dies is noticed "
                "only by its silence", self.resolve(topic))
            sub = self._node.create_subscription(cls, topic, on_msg, profile)
        return _RclpySubscription(self._node, sub)

    def timer(self, period: float, callback: Callable[[], None]) -> Timer:
        if not period > 0:
            raise ValueError(f"timer period must be > 0 s, got {period}")
        timer = self._node.create_timer(float(period), self._guarded(callback, "timer callback"))
        return _RclpyTimer(self._node, timer)

    def call_soon(self, callback: Callable[[], None]) -> None:
        if self._closed:
            return
        self._pending.append(callback)
        try:
            self._guard.trigger()
        except Exception:  # the node is being destroyed
            pass

    def now(self) -> float:
        return self._node.get_clock().now().nanoseconds * 1e-9

    def spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        self._spin_thread = threading.get_ident()
        try:
            while not self._closed and self._node.context.ok():
                self._executor.spin_once(timeout_sec=0.5)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            self._spin_thread = None
            if self._closed:
                self._destroy()

    def spin_once(self, timeout: float = 0.0) -> None:
        from rclpy.executors import ExternalShutdownException

        if self._closed:
            return
        try:
            self._executor.spin_once(timeout_sec=timeout)
        except ExternalShutdownException:
            pass

    def shutdown(self) -> None:
        if self._closed and self._destroyed:
            return
        self._closed = True
        if self._spin_thread is not None:
            # spin() is running (here, in a callback, or in another thread): wake it; it destroys
            # the node when it returns.
            if self._spin_thread != threading.get_ident():
                try:
                    self._guard.trigger()
                except Exception:
                    pass
            return
        self._destroy()

    # -- teardown -----------------------------------------------------------------------------
    def _destroy(self) -> None:
        if self._destroyed:
            return
        self._destroyed = True
        self.logger.removeHandler(self._log_handler)
        self.logger.propagate = True
        try:
            self._executor.remove_node(self._node)
            self._executor.shutdown(timeout_sec=0)
            self._node.destroy_node()
        except Exception as exc:  # the context may already be shut down (SIGINT)
            log.debug("destroying node %s: %s", self.node_name, exc)
        self._release_context()

    def _release_context(self) -> None:
        global _live_ports, _we_initialized
        with _init_lock:
            _live_ports -= 1
            if _live_ports <= 0 and _we_initialized:
                _we_initialized = False
                try:
                    self._rclpy.try_shutdown()
                except Exception as exc:
                    log.debug("rclpy shutdown: %s", exc)


__all__ = ["RclpyPort", "RclpyUnavailable", "UNAVAILABLE", "message_class", "new_message",
           "qos_profile"]
