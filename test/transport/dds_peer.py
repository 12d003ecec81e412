"""A separate process for the dds transport tests: publishes or subscribes with a DdsPort.

    python dds_peer.py pub --kind string --topic chatter [--qos reliable] [--lease 0.02]
    python dds_peer.py sub --kind bool --topic enable --qos latched --count 1
    python dds_peer.py spin

``pub`` publishes message ``i = 0, 1, 2, ...`` of ``--kind`` every ``--period`` seconds until a
line (or EOF) arrives on stdin, then shuts down cleanly and exits 0; it never exits on its own, so
tests kill it or write to it. ``sub`` prints one JSON line per message (:func:`summary`) and exits
after ``--count`` messages. ``spin`` spins an idle node until SIGINT/SIGTERM. Each prints READY
once its entities exist. The tests import :func:`make_message` and :func:`summary` to know what
to expect.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from vla_ros.transport import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS, QoS, codecs, types  # noqa: E402

KINDS = {
    "string": "std_msgs/msg/String",
    "image": "sensor_msgs/msg/Image",
    "chunk": "vla_ros/msg/ActionChunk",
    "bool": "std_msgs/msg/Bool",
}
QOS = {"reliable": RELIABLE_QOS, "sensor": SENSOR_QOS, "latched": LATCHED_QOS}
JOINTS = [f"joint_{k}" for k in range(6)]


def frame_for(i: int, height: int = 480, width: int = 640) -> np.ndarray:
    """A deterministic rgb8 frame for message ``i``."""
    y, x = np.mgrid[0:height, 0:width]
    r = (x + i) % 256
    g = (y + 2 * i) % 256
    b = (x + y) % 256
    return np.stack([r, g, b], axis=2).astype(np.uint8)


def make_message(port, kind: str, i: int):
    """Message number ``i`` of ``kind``, built through ``port``."""
    if kind == "string":
        return port.new("std_msgs/msg/String", data=f"hello {i}")
    if kind == "bool":
        return port.new("std_msgs/msg/Bool", data=True)
    if kind == "image":
        return codecs.numpy_to_image(port, frame_for(i), "rgb8", 1000.0 + i, "camera_front")
    if kind == "chunk":
        horizon = 50
        actions = (np.arange(horizon * len(JOINTS), dtype=np.float32) * 0.001 + i).astype(np.float32)
        return port.new(
            "vla_ros/msg/ActionChunk",
            header=port.header(2000.0 + i + 0.25, ""),
            chunk_id=i,
            joint_names=list(JOINTS),
            horizon=horizon,
            action_dim=len(JOINTS),
            step_period=0.02,
            actions=actions,
            model_variant="tiny",
            inference_latency=0.0125,
        )
    raise ValueError(f"unknown kind {kind!r}; valid: {', '.join(KINDS)}")


def summary(kind: str, msg) -> dict:
    """What a test checks of a received message, as JSON-able data."""
    if kind == "string":
        return {"data": msg.data}
    if kind == "bool":
        return {"data": bool(msg.data)}
    if kind == "image":
        frame = codecs.image_to_numpy(msg)
        i = int(types.stamp_to_sec(msg.header.stamp) - 1000.0)
        return {"i": i, "shape": list(frame.shape), "encoding": msg.encoding,
                "frame_id": msg.header.frame_id, "equal": bool(np.array_equal(frame, frame_for(i)))}
    if kind == "chunk":
        return {"chunk_id": int(msg.chunk_id), "joint_names": list(msg.joint_names),
                "horizon": int(msg.horizon), "action_dim": int(msg.action_dim),
                "actions": [float(v) for v in msg.actions[:3]], "n": len(msg.actions),
                "stamp": types.stamp_to_sec(msg.header.stamp)}
    raise ValueError(kind)


def _qos(args) -> QoS:
    base = QOS[args.qos]
    return QoS(base.reliable, base.depth, base.transient_local, args.lease)


def _port(args):
    from vla_ros.transport.dds import DdsPort

    remap = dict(r.split(":=", 1) for r in args.remap)
    return DdsPort(args.name, args.namespace, remappings=remap)


def pub(args) -> None:
    port = _port(args)
    publisher = port.publisher(args.topic, KINDS[args.kind], _qos(args))
    count = [0]

    def tick() -> None:
        publisher.publish(make_message(port, args.kind, count[0]))
        count[0] += 1

    def stop_on_stdin() -> None:
        sys.stdin.readline()
        port.call_soon(port.executor.stop)

    threading.Thread(target=stop_on_stdin, daemon=True).start()
    port.timer(args.period, tick)
    print("READY", flush=True)
    port.spin()
    if not args.skip_shutdown:  # else the dds module's atexit hook shuts the port down
        port.shutdown()
    print(f"STOPPED after {count[0]}", flush=True)


def sub(args) -> None:
    port = _port(args)
    got = [0]

    def on_msg(msg) -> None:
        print(json.dumps(summary(args.kind, msg)), flush=True)
        got[0] += 1
        if got[0] >= args.count:
            port.executor.stop()

    port.subscribe(args.topic, KINDS[args.kind], on_msg, _qos(args))
    print("READY", flush=True)
    port.spin()
    port.shutdown()


def spin(args) -> None:
    port = _port(args)
    port.timer(0.05, lambda: None)
    port.call_soon(lambda: print("READY", flush=True))  # from inside spin(): handlers are set
    port.spin()
    port.shutdown()
    print("SPIN RETURNED", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["pub", "sub", "spin"])
    parser.add_argument("--kind", choices=list(KINDS), default="string")
    parser.add_argument("--topic", default="chatter")
    parser.add_argument("--qos", choices=list(QOS), default="reliable")
    parser.add_argument("--lease", type=float, default=0.0)
    parser.add_argument("--period", type=float, default=0.05)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--name", default="peer")
    parser.add_argument("--namespace", default="")
    parser.add_argument("--remap", action="append", default=[])
    parser.add_argument("--skip-shutdown", action="store_true")
    args = parser.parse_args()
    {"pub": pub, "sub": sub, "spin": spin}[args.mode](args)


if __name__ == "__main__":
    main()
