#!/usr/bin/env python3
"""Reading 640x480 image bags: frames per second, mcap and sqlite3.

Writes one bag per storage (``--frames`` rgb8 640x480 sensor_msgs/Image frames of the mock
scene, alternating between two camera topics, plus joint states), then reads each back
``--repeat`` times, the way offline evaluation does (vla_ros.eval.bagio.BagReader: CDR ->
message -> numpy image through the transport codecs, RGB for the policy), and prints the
median frames per second. Baseline from the same run: reading the storage file's bytes with
plain ``f.read`` (what the disk / page cache gives), and the raw message bytes without decoding.
Goal: at least 500 frames per second for each storage.

    .venv/bin/python bench/bag_read.py [--frames 600] [--repeat 3] [--dir /tmp]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vla_ros.eval.bagio import BagReader, BagWriter, ns  # noqa: E402
from vla_ros.eval.synthetic import image_msg, joint_state_msg  # noqa: E402
from vla_ros.robots import load_robot  # noqa: E402
from vla_ros.robots.scene import SceneRenderer  # noqa: E402
from vla_ros.transport.codecs import image_to_numpy, to_rgb8  # noqa: E402

GOAL_FPS = 500.0
TOPICS = ("/camera/top/image_raw", "/camera/wrist/image_raw")


def write_bag(path: Path, storage: str, frames: int) -> int:
    spec = load_robot("so100")
    scenes = {t: SceneRenderer(spec, t.split("/")[2], 640, 480) for t in TOPICS}
    images = {t: [s.render(spec.home + 0.05 * k, k) for k in range(8)] for t, s in scenes.items()}
    t0 = 1_700_000_000.0
    with BagWriter(path, storage=storage) as bag:
        for topic in TOPICS:
            bag.add_topic(topic, "sensor_msgs/msg/Image")
        bag.add_topic("/joint_states", "sensor_msgs/msg/JointState")
        for k in range(frames):
            t = t0 + k / 60.0
            topic = TOPICS[k % 2]
            bag.write_msg(topic, ns(t), image_msg(images[topic][k % 8], t, topic))
            bag.write_msg("/joint_states", ns(t), joint_state_msg(spec.joint_names, spec.home, t))
    return sum(f.stat().st_size for f in path.iterdir())


def read_decoded(path: Path) -> tuple[int, float]:
    n, check = 0, 0
    with BagReader(path) as bag:
        for _, _, msg in bag.messages(TOPICS):
            rgb = to_rgb8(image_to_numpy(msg), msg.encoding)
            check += int(rgb[240, 320, 0])
            n += 1
    return n, check


def read_raw(path: Path) -> int:
    n = 0
    with BagReader(path) as bag:
        for _, _, raw in bag.messages(TOPICS, raw=True):
            n += len(raw) > 0
    return n


def file_bytes(path: Path) -> int:
    total = 0
    for f in path.iterdir():
        if f.suffix in (".mcap", ".db3"):
            with open(f, "rb", buffering=0) as fh:
                while chunk := fh.read(1 << 22):
                    total += len(chunk)
    return total


def timed(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where to write the bags (default a temporary directory)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="vla_ros_bag_read_", dir=args.dir))
    ok = True
    try:
        for storage in ("mcap", "sqlite3"):
            path = root / storage
            t0 = time.perf_counter()
            size = write_bag(path, storage, args.frames)
            t_write = time.perf_counter() - t0
            t_file, nbytes = timed(lambda: file_bytes(path), args.repeat)
            t_raw, n_raw = timed(lambda: read_raw(path), args.repeat)
            t_dec, (n_dec, _) = timed(lambda: read_decoded(path), args.repeat)
            assert n_raw == n_dec == args.frames
            fps = n_dec / t_dec
            passed = fps >= GOAL_FPS
            ok &= passed
            print(f"{storage:>7}: {args.frames} frames 640x480 rgb8 ({size / 1e6:.0f} MB, written in {t_write:.1f} s)\n"
                  f"         read + decode to RGB numpy: {fps:7.0f} frames/s ({t_dec / n_dec * 1e3:.2f} ms/frame, "
                  f"median of {args.repeat})\n"
                  f"         raw message bytes        : {n_raw / t_raw:7.0f} frames/s\n"
                  f"         file bytes (f.read)      : {nbytes / t_file / 1e6:7.0f} MB/s = "
                  f"{nbytes / t_file / (size / args.frames):.0f} frames/s; decode/file ratio "
                  f"{(n_dec / t_dec) / (nbytes / t_file / (size / args.frames)):.2f}\n"
                  f"         goal >= {GOAL_FPS:.0f} frames/s: {'PASS' if passed else 'FAIL'}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
