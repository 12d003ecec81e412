"""The transport port: what a node may ask of a middleware.

Node logic is written once against :class:`Port`; backends (``rclpy``, ``dds``, ``inproc``)
implement it. Messages are addressed by their ROS 2 names (``sensor_msgs/msg/Image``) and are
plain attribute objects: rclpy message instances on ROS, rosbags typestore dataclasses elsewhere.
Build them with :meth:`Port.new` so node code never depends on which backend runs it.
"""
from __future__ import annotations

import abc
import logging
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Mapping

from .params import Param, validate


@dataclass(frozen=True)
class QoS:
    """The subset of ROS 2 QoS the nodes use."""

    reliable: bool = True
    depth: int = 10
    transient_local: bool = False
    # Seconds; 0 means infinite (no liveliness lease).
    liveliness_lease: float = 0.0


#: Cameras: best effort, keep last 5, volatile (rclpy's qos_profile_sensor_data).
SENSOR_QOS = QoS(reliable=False, depth=5)
#: Instructions, chunks, commands: reliable, keep last 10, volatile (rclpy's default).
RELIABLE_QOS = QoS(reliable=True, depth=10)
#: Joint states: reliable keep last 10 (what robot_state_publisher / ros2_control use).
STATE_QOS = QoS(reliable=True, depth=10)
#: Latched topics (enable / estop): a late subscriber still gets the last value.
LATCHED_QOS = QoS(reliable=True, depth=1, transient_local=True)


class Publisher(abc.ABC):
    @abc.abstractmethod
    def publish(self, msg: Any) -> None: ...

    @property
    def subscription_count(self) -> int:
        return 0


class Subscription(abc.ABC):
    @property
    def publisher_count(self) -> int:
        return 0


class Timer(abc.ABC):
    @abc.abstractmethod
    def cancel(self) -> None: ...


class Port(abc.ABC):
    """One node's handle on the middleware.

    Callbacks (subscriptions, timers) run on the backend's executor thread, one at a time, so node
    logic needs no locks against itself; work that would block (inference) goes to a worker
    thread and comes back through :meth:`call_soon`.
    """

    backend: str = "abstract"

    def __init__(self, node_name: str, namespace: str = "") -> None:
        self.node_name = node_name
        self.namespace = namespace.strip("/")
        self.logger = logging.getLogger(node_name)
        self._warned: set[str] = set()

    # -- parameters -------------------------------------------------------------------------
    def parameters(self, specs: Iterable[Param]) -> SimpleNamespace:
        """Declare ``specs`` and return their typed, validated values (raises ParameterError)."""
        specs = list(specs)
        return validate(self.node_name, specs, self._raw_parameters(specs))

    @abc.abstractmethod
    def _raw_parameters(self, specs: list[Param]) -> Mapping[str, Any]:
        """Raw values given to this node for ``specs`` (rclpy declares them here)."""

    # -- messages ---------------------------------------------------------------------------
    @abc.abstractmethod
    def new(self, msg_type: str, **fields: Any) -> Any:
        """A message of ``msg_type`` (``pkg/msg/Type``) with defaults for fields not given."""

    # -- graph ------------------------------------------------------------------------------
    @abc.abstractmethod
    def publisher(self, topic: str, msg_type: str, qos: QoS = RELIABLE_QOS) -> Publisher: ...

    @abc.abstractmethod
    def subscribe(
        self,
        topic: str,
        msg_type: str,
        callback: Callable[[Any], None],
        qos: QoS = RELIABLE_QOS,
        on_liveliness_lost: Callable[[], None] | None = None,
        on_liveliness_regained: Callable[[], None] | None = None,
    ) -> Subscription:
        """Subscribe; ``on_liveliness_lost`` is called when every live publisher is gone
        (a process died or its liveliness lease ran out), ``on_liveliness_regained`` when a
        publisher is alive again after such a loss."""

    @abc.abstractmethod
    def timer(self, period: float, callback: Callable[[], None]) -> Timer: ...

    @abc.abstractmethod
    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the executor thread (thread safe; for worker results)."""

    # -- time -------------------------------------------------------------------------------
    @abc.abstractmethod
    def now(self) -> float:
        """ROS time in seconds (system clock unless the backend simulates time)."""

    # -- life cycle -------------------------------------------------------------------------
    @abc.abstractmethod
    def spin(self) -> None:
        """Run callbacks until :meth:`shutdown` or SIGINT/SIGTERM."""

    @abc.abstractmethod
    def spin_once(self, timeout: float = 0.0) -> None:
        """Run what is due, waiting at most ``timeout`` seconds for something to be due."""

    @abc.abstractmethod
    def shutdown(self) -> None: ...

    def stamp(self, t: float) -> Any:
        """A builtin_interfaces/Time for ``t`` seconds."""
        sec = int(t // 1)
        nanosec = min(int(round((t - sec) * 1e9)), 999_999_999)
        return self.new("builtin_interfaces/msg/Time", sec=sec, nanosec=nanosec)

    def header(self, t: float, frame_id: str = "") -> Any:
        return self.new("std_msgs/msg/Header", stamp=self.stamp(t), frame_id=frame_id)

    # -- helpers ----------------------------------------------------------------------------
    def resolve(self, topic: str) -> str:
        """Fully qualified topic name (``/ns/topic``) of a relative or absolute name."""
        if topic.startswith("/"):
            return topic
        if topic.startswith("~/"):
            topic = f"{self.node_name}/{topic[2:]}"
        return f"/{self.namespace}/{topic}" if self.namespace else f"/{topic}"

    def warn_once(self, key: str, message: str) -> None:
        """Log ``message`` as a warning the first time ``key`` is seen."""
        if key not in self._warned:
            self._warned.add(key)
            self.logger.warning(message)
