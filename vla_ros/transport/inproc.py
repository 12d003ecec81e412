"""In-process backend: ports in one Python process exchange message objects on a bus.

For unit and node tests. Semantics follow ROS 2 where tests rely on them: topic names are
resolved the same way, keep-last history on transient-local publishers reaches late
subscribers, liveliness is lost when the last publisher of a topic shuts down, and callbacks
run on the executor of the subscribing port.
"""
from __future__ import annotations

import time
from collections import defaultdict, deque
from typing import Any, Callable, Mapping

from . import types
from .executor import Executor
from .params import Param
from .port import RELIABLE_QOS, Port, Publisher, QoS, Subscription, Timer


class Bus:
    """Connects the inproc ports of one process."""

    def __init__(self) -> None:
        self.subs: dict[str, list["_InprocSubscription"]] = defaultdict(list)
        self.pubs: dict[str, list["_InprocPublisher"]] = defaultdict(list)
        self.latched: dict[str, deque] = {}


DEFAULT_BUS = Bus()


class _InprocPublisher(Publisher):
    def __init__(self, port: "InprocPort", topic: str, msg_type: str, qos: QoS) -> None:
        self.port, self.topic, self.msg_type, self.qos = port, topic, msg_type, qos
        self.closed = False
        if qos.transient_local:
            port.bus.latched.setdefault(topic, deque(maxlen=qos.depth))

    def publish(self, msg: Any) -> None:
        if self.closed:
            raise RuntimeError(f"publisher on {self.topic} is shut down")
        if getattr(msg, "__msgtype__", self.msg_type) != self.msg_type:
            raise TypeError(f"{self.topic}: expected {self.msg_type}, got {msg.__msgtype__}")
        if self.qos.transient_local:
            self.port.bus.latched[self.topic].append(msg)
        for sub in list(self.port.bus.subs[self.topic]):
            sub.deliver(msg)

    @property
    def subscription_count(self) -> int:
        return len(self.port.bus.subs[self.topic])


class _InprocSubscription(Subscription):
    def __init__(self, port, topic, msg_type, callback, qos, on_liveliness_lost,
                 on_liveliness_regained=None) -> None:
        self.port, self.topic, self.msg_type = port, topic, msg_type
        self.callback, self.qos, self.on_liveliness_lost = callback, qos, on_liveliness_lost
        self.on_liveliness_regained = on_liveliness_regained
        self.lost = False

    def deliver(self, msg: Any) -> None:
        self.port.executor.post(lambda: self.callback(msg))

    @property
    def publisher_count(self) -> int:
        return sum(not p.closed for p in self.port.bus.pubs[self.topic])


class _InprocTimer(Timer):
    def __init__(self, timer) -> None:
        self._timer = timer

    def cancel(self) -> None:
        self._timer.cancel()


class InprocPort(Port):
    backend = "inproc"

    def __init__(
        self,
        node_name: str,
        namespace: str = "",
        parameters: Mapping[str, Any] | None = None,
        bus: Bus | None = None,
        remappings: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(node_name, namespace)
        self.bus = bus or DEFAULT_BUS
        self.executor = Executor()
        self._params = dict(parameters or {})
        self._remap = {self.resolve(k): self.resolve(v) for k, v in (remappings or {}).items()}
        self._pubs: list[_InprocPublisher] = []
        self._subs: list[_InprocSubscription] = []

    def _topic(self, topic: str) -> str:
        name = self.resolve(topic)
        return self._remap.get(name, name)

    def _raw_parameters(self, specs: list[Param]) -> Mapping[str, Any]:
        return self._params

    def new(self, msg_type: str, **fields: Any) -> Any:
        return types.new(msg_type, **fields)

    def publisher(self, topic: str, msg_type: str, qos: QoS = RELIABLE_QOS) -> Publisher:
        types.msg_class(msg_type)
        pub = _InprocPublisher(self, self._topic(topic), msg_type, qos)
        self.bus.pubs[pub.topic].append(pub)
        for sub in self.bus.subs[pub.topic]:
            if sub.lost:
                sub.lost = False
                if sub.on_liveliness_regained is not None:
                    sub.port.executor.post(sub.on_liveliness_regained)
        self._pubs.append(pub)
        return pub

    def subscribe(self, topic, msg_type, callback, qos=RELIABLE_QOS, on_liveliness_lost=None,
                  on_liveliness_regained=None):
        types.msg_class(msg_type)
        sub = _InprocSubscription(self, self._topic(topic), msg_type, callback, qos, on_liveliness_lost,
                                  on_liveliness_regained)
        self.bus.subs[sub.topic].append(sub)
        self._subs.append(sub)
        if qos.transient_local:
            for msg in self.bus.latched.get(sub.topic, ()):
                sub.deliver(msg)
        return sub

    def timer(self, period: float, callback: Callable[[], None]) -> Timer:
        return _InprocTimer(self.executor.add_timer(period, callback))

    def call_soon(self, callback: Callable[[], None]) -> None:
        self.executor.post(callback)

    def now(self) -> float:
        return time.time()

    def spin(self) -> None:
        self.executor.spin()

    def spin_once(self, timeout: float = 0.0) -> None:
        self.executor.spin_once(timeout)

    def spin_for(self, duration: float) -> None:
        self.executor.spin_for(duration)

    def shutdown(self) -> None:
        if self.executor.stopped:
            return
        self.executor.stop()
        for sub in self._subs:
            self.bus.subs[sub.topic].remove(sub)
        for pub in self._pubs:
            pub.closed = True
            self.bus.pubs[pub.topic].remove(pub)
            if not any(not p.closed for p in self.bus.pubs[pub.topic]):
                for sub in self.bus.subs[pub.topic]:
                    sub.lost = True
                    if sub.on_liveliness_lost is not None:
                        sub.port.executor.post(sub.on_liveliness_lost)


def spin_ports(ports: list[InprocPort], duration: float, step: float = 0.001) -> None:
    """Spin several inproc ports from one thread for ``duration`` seconds (node tests)."""
    end = time.monotonic() + duration
    while time.monotonic() < end:
        ran = False
        for port in ports:
            if not port.executor.stopped and port.executor.spin_once(0.0):
                ran = True
        if not ran:
            time.sleep(step)
