#!/usr/bin/env python3
"""One-way latency of the dds transport between two processes on loopback.

This process publishes; a subscriber process started here receives and records, for every
message, the time its callback runs minus the time the message was stamped just before it was
built and published. Both processes read the same system clock, so the figure covers building
the message, serialization, Cyclone DDS over loopback UDP, decoding and the executor hand-over
to the callback.

Measured in one run:
- a 640x480 rgb8 sensor_msgs/Image (sensor QoS: best effort, keep last 5), the goal being a
  median of at most 2 ms;
- a small std_msgs/String (reliable) as the baseline;
- the codec cost of a frame (numpy -> Image, CDR bytes <-> Image, Image -> numpy -> RGB for the
  policy), in this process;
and the ratios between them. With ``--liveliness N`` it also measures N times how long a
subscriber takes to learn that a publisher process (liveliness lease 20 ms) is gone, after
SIGKILL and after a clean exit.

    .venv/bin/python bench/transport_latency.py [--count 300] [--rate 30] [--liveliness 5]

Everything stays on loopback (config/dds/loopback.xml is forced for this run).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vla_ros.transport import RELIABLE_QOS, SENSOR_QOS, QoS, codecs, types  # noqa: E402
from vla_ros.transport.dds_env import loopback_env  # noqa: E402

WARMUP = 10
LEASE = 0.02


def topics(tag: str) -> tuple[str, str, str]:
    """Topic names private to one run (other runs may share the domain)."""
    return f"bench_{tag}/image_raw", f"bench_{tag}/text", f"bench_{tag}/alive"


def role_subscriber(tag: str) -> None:
    """The receiving process: records latencies until a line arrives on stdin, prints JSON."""
    from vla_ros.transport.dds import DdsPort

    image_topic, string_topic, _ = topics(tag)
    port = DdsPort("latency_subscriber")
    lat: dict[str, list[float]] = {"image": [], "string": []}

    def on_image(msg) -> None:
        now = time.time()
        frame = codecs.image_to_numpy(msg)
        assert frame.shape == (msg.height, msg.width, 3)
        lat["image"].append(now - types.stamp_to_sec(msg.header.stamp))

    def on_string(msg) -> None:
        lat["string"].append(time.time() - float(msg.data))

    port.subscribe(image_topic, "sensor_msgs/msg/Image", on_image, SENSOR_QOS)
    port.subscribe(string_topic, "std_msgs/msg/String", on_string, RELIABLE_QOS)
    _stop_on_stdin(port)
    print("READY", flush=True)
    port.spin()
    port.shutdown()
    print(json.dumps(lat), flush=True)


def role_talker(tag: str) -> None:
    """A publisher with a 20 ms liveliness lease; on a stdin line it prints the time and exits
    cleanly, or it is killed."""
    from vla_ros.transport.dds import DdsPort

    port = DdsPort("liveliness_talker")
    pub = port.publisher(topics(tag)[2], "std_msgs/msg/String", QoS(liveliness_lease=LEASE))
    port.timer(0.02, lambda: pub.publish(port.new("std_msgs/msg/String", data="alive")))

    def stop() -> None:
        sys.stdin.readline()
        print(f"EXIT {time.time():.6f}", flush=True)
        port.call_soon(port.executor.stop)

    threading.Thread(target=stop, daemon=True).start()
    print("READY", flush=True)
    port.spin()
    port.shutdown()


def _stop_on_stdin(port) -> None:
    def wait() -> None:
        sys.stdin.readline()
        port.call_soon(port.executor.stop)

    threading.Thread(target=wait, daemon=True).start()


def _child(role: str, tag: str) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, __file__, "--role", role, "--tag", tag],
        env=os.environ.copy(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    if child.stdout.readline().strip() != "READY":
        child.kill()
        raise SystemExit(f"the {role} process did not start")
    return child


def _wait(predicate, timeout: float, port=None) -> bool:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            return False
        if port is not None:
            port.spin_once(0.005)
        else:
            time.sleep(0.005)
    return True


def stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values) * 1e3
    if a.size == 0:
        return {"n": 0, "median": float("nan"), "p90": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {"n": int(a.size), "median": float(np.median(a)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max())}


def codec_cost(port, frame: np.ndarray, repeat: int = 50) -> dict[str, float]:
    """Median milliseconds of each conversion step for one frame."""
    from vla_ros.transport.dds import serialize

    msg = codecs.numpy_to_image(port, frame, "rgb8", time.time(), "camera")
    raw = bytes(serialize(msg, "sensor_msgs/msg/Image"))
    bgr = np.ascontiguousarray(frame[:, :, ::-1])
    buf = bytearray()
    steps = {
        "numpy_to_image": lambda: codecs.numpy_to_image(port, frame, "rgb8", 0.0, "camera"),
        "serialize (CDR)": lambda: serialize(msg, "sensor_msgs/msg/Image", buf).release(),
        "deserialize (CDR)": lambda: types.deserialize(raw, "sensor_msgs/msg/Image"),
        "image_to_numpy": lambda: codecs.image_to_numpy(msg),
        "to_rgb8 (rgb8)": lambda: codecs.to_rgb8(frame, "rgb8"),
        "to_rgb8 (bgr8)": lambda: codecs.to_rgb8(bgr, "bgr8"),
    }
    out = {}
    for name, fn in steps.items():
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        out[name] = float(np.median(times) * 1e3)
    return out


def measure_latency(args, tag: str) -> tuple[dict, dict, dict]:
    from vla_ros.transport.dds import DdsPort

    image_topic, string_topic, _ = topics(tag)
    child = _child("subscriber", tag)
    try:
        port = DdsPort("latency_publisher")
        image_pub = port.publisher(image_topic, "sensor_msgs/msg/Image", SENSOR_QOS)
        string_pub = port.publisher(string_topic, "std_msgs/msg/String", RELIABLE_QOS)
        if not _wait(lambda: image_pub.subscription_count and string_pub.subscription_count, 20):
            raise SystemExit("the subscriber was not discovered within 20 s")
        time.sleep(0.5)  # let the subscriber match us too

        frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
        for _ in range(args.count + WARMUP):
            string_pub.publish(port.new("std_msgs/msg/String", data=repr(time.time())))
            time.sleep(0.5 / args.rate)
            image_pub.publish(codecs.numpy_to_image(port, frame, "rgb8", time.time(), "camera"))
            time.sleep(0.5 / args.rate)
        time.sleep(0.5)
        codec = codec_cost(port, frame)
        port.shutdown()
        child.stdin.write("stop\n")
        child.stdin.flush()
        out, _ = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    lat = json.loads(out.strip().splitlines()[-1])
    return stats(lat["image"][WARMUP:]), stats(lat["string"][WARMUP:]), codec


def measure_liveliness(trials: int, tag: str) -> dict[str, list[float]]:
    """Seconds from a publisher process's death to on_liveliness_lost here."""
    from vla_ros.transport.dds import DdsPort

    port = DdsPort("liveliness_watcher")
    events = {"msgs": 0, "lost": []}
    port.subscribe(
        topics(tag)[2], "std_msgs/msg/String",
        lambda m: events.__setitem__("msgs", events["msgs"] + 1),
        on_liveliness_lost=lambda: events["lost"].append(time.time()),
    )
    delays: dict[str, list[float]] = {"SIGKILL": [], "clean exit": []}
    for trial in range(2 * trials):
        how = "SIGKILL" if trial % 2 == 0 else "clean exit"
        talker = _child("talker", tag)
        start, lost = events["msgs"], len(events["lost"])
        if not _wait(lambda: events["msgs"] >= start + 5, 20, port):
            talker.kill()
            raise SystemExit("no messages from the talker process within 20 s")
        if how == "SIGKILL":
            t_dead = time.time()
            talker.send_signal(signal.SIGKILL)
        else:
            talker.stdin.write("stop\n")
            talker.stdin.flush()
            t_dead = float(talker.stdout.readline().split()[1])
        if _wait(lambda: len(events["lost"]) > lost, 20, port):
            delays[how].append(events["lost"][-1] - t_dead)
        talker.wait(timeout=30)
    port.shutdown()
    return delays


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300, help="messages of each kind")
    parser.add_argument("--rate", type=float, default=30.0, help="images per second")
    parser.add_argument("--liveliness", type=int, default=0, metavar="N",
                        help="also measure liveliness-loss detection N times per case")
    parser.add_argument("--role", choices=["subscriber", "talker"], help=argparse.SUPPRESS)
    parser.add_argument("--tag", default=str(os.getpid()), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "subscriber":
        role_subscriber(args.tag)
        return 0
    if args.role == "talker":
        role_talker(args.tag)
        return 0

    os.environ.update(loopback_env(force=True))
    image, string, codec = measure_latency(args, args.tag)

    print(f"dds transport latency, one way, separate processes on loopback "
          f"({args.count} of each after {WARMUP} warm-up, images at {args.rate:g} Hz)")
    print(f"{'message':<34}{'received':>9}{'median':>9}{'p90':>9}{'p99':>9}{'max':>9}  (ms)")
    for name, s in (("sensor_msgs/Image 640x480 rgb8", image), ("std_msgs/String (baseline)", string)):
        print(f"{name:<34}{s['n']:>5}/{args.count:<3}{s['median']:>9.3f}{s['p90']:>9.3f}"
              f"{s['p99']:>9.3f}{s['max']:>9.3f}")
    print("codec cost per 640x480 frame, median (ms):")
    for name, ms in codec.items():
        print(f"  {name:<20}{ms:>8.3f}")
    decode = codec["image_to_numpy"] + codec["to_rgb8 (bgr8)"]
    print("ratios:")
    print(f"  image / string median latency                        {image['median'] / string['median']:6.2f}")
    print(f"  image median latency / 2 ms goal                     {image['median'] / 2.0:6.2f}")
    print(f"  frame decode (to numpy + bgr->rgb) / image latency   {decode / image['median']:6.2f}")

    if args.liveliness:
        delays = measure_liveliness(args.liveliness, args.tag)
        print(f"liveliness lost after the publisher process dies (lease {LEASE * 1e3:g} ms), ms:")
        for how, values in delays.items():
            ms = sorted(v * 1e3 for v in values)
            shown = ", ".join(f"{v:.1f}" for v in ms)
            print(f"  {how:<11} detected {len(ms)}/{args.liveliness}: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
