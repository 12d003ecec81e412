#!/usr/bin/env python3
"""Pipeline timings with the tiny model (robot so100, mock hardware), measured in one run.

1. Policy node overhead, in this process on the inproc backend: a PolicyNode is fed synthetic
   640x480 rgb8 Images (30 Hz, both cameras) and JointStates (50 Hz) stamped when published; for
   every chunk the node records (``PolicyNode.chunk_timings``) the time from the observation's
   stamp to the return of the chunk's publish(), and the time spent inside
   ``runtime.predict_chunk``. Overhead = the first minus the second: input delivery, the
   worker hand-over, image decoding, unit conversion, building and publishing the message. The
   node runs with ``replan_threshold`` 1.0 (a new chunk on the first joint state after the last
   one) so that enough chunks come quickly; the schedule does not change the per-chunk path.
   The ports spin on their own threads, as in the node processes.
2. Bridge command period at 50 Hz, the full stack as processes over Cyclone DDS on loopback
   (``Launcher`` + ``node_plan('so100', 'tiny', 'mock')``): arrival times of
   ``arm_controller/joint_trajectory`` in this process (they include DDS delivery and this
   process's own scheduling), and the bridge's own timer callback times (its ``timing_log``
   parameter), in three phases of one launch: the policy idle (no instruction yet: the
   baseline); the policy inferring (after an instruction; by default with ``replan_threshold``
   1.0, i.e. back to back, the worst case for the bridge: ``--replan-threshold 0.5`` gives the
   node's own schedule); and inferring again with the bridge process switched to SCHED_FIFO
   (what a ros2_control loop gets from its ``thread_priority``; needs root or CAP_SYS_NICE,
   ``--no-realtime`` skips it). It also counts the bridge's false "policy lost" events.

With ``--model-size full`` part 1 runs SmolVLA at its real size (``smolvla_base`` architecture,
random weights, built once by ``vla_ros.policy.tiny.ensure_full_size_checkpoint``, ~1.8 GB)
instead of the tiny model, and part 2 is skipped (the bridge does not depend on the model size).

No figure is asserted; goals (issue 2): overhead median <= 5 ms, command jitter p99 <= 2 ms.

    .venv/bin/python bench/pipeline.py [--chunks 60] [--window 10] [--replan-threshold 1.0]
    .venv/bin/python bench/pipeline.py --model-size full --chunks 10
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vla_ros.launcher import dds_environment  # noqa: E402
from vla_ros.transport.dds_env import loopback_uri  # noqa: E402

ROBOT, MODEL, HARDWARE = "so100", "tiny", "mock"
WARMUP_CHUNKS = 5
LOST = "chunk publisher is gone"  # the bridge's log line when the policy's liveliness is lost


def ms(values) -> np.ndarray:
    return np.asarray(values, dtype=float) * 1e3


def pct(values, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def progress(total, desc: str, unit: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True)


# -- 1. policy node overhead (inproc) -----------------------------------------------------------
def full_size_checkpoint(spec) -> Path:
    """The full-size SmolVLA checkpoint for the robot (built on first use, then cached)."""
    from vla_ros.policy import tiny
    from vla_ros.policy.robot_dims import RobotDims

    build = getattr(tiny, "ensure_full_size_checkpoint", None)
    if build is None:
        raise SystemExit("--model-size full needs vla_ros.policy.tiny.ensure_full_size_checkpoint")
    bar = progress(None, "policy: building/finding the full-size SmolVLA checkpoint", "s")
    try:
        return build(RobotDims.from_robot_spec(spec))
    finally:
        bar.close()


def policy_overhead(n_chunks: int, timeout: float, model_size: str = "tiny",
                    warmup_chunks: int = WARMUP_CHUNKS) -> dict:
    from vla_ros.nodes.policy import PolicyNode
    from vla_ros.robots import load_robot
    from vla_ros.robots.scene import SceneRenderer
    from vla_ros.transport.codecs import numpy_to_image
    from vla_ros.transport.inproc import Bus, InprocPort
    from vla_ros.transport.port import RELIABLE_QOS, SENSOR_QOS, STATE_QOS

    spec = load_robot(ROBOT)
    bus = Bus()
    params = {"robot": ROBOT, "model": MODEL, "replan_threshold": 1.0, "status_rate": 1.0}
    if model_size == "full":
        params["checkpoint"] = str(full_size_checkpoint(spec))
    policy_port = InprocPort("policy_node", bus=bus, parameters=params)
    feed = InprocPort("bench_feeder", bus=bus)
    t_load = time.monotonic()
    node = PolicyNode(policy_port)
    # A model slower than a chunk lasts (the full-size one on a CPU) makes every chunk stale; the
    # node would drop them. Publish them anyway: the per-chunk path measured here is the same.
    node.logic.publish_stale = model_size == "full"
    spinner = threading.Thread(target=policy_port.spin, name="policy-executor", daemon=True)
    spinner.start()

    frames = {c.topic: SceneRenderer(spec, c.name, c.width, c.height).render(spec.home) for c in spec.cameras}
    image_pubs = {t: feed.publisher(t, "sensor_msgs/msg/Image", SENSOR_QOS) for t in frames}
    state_pub = feed.publisher("joint_states", "sensor_msgs/msg/JointState", STATE_QOS)
    say = feed.publisher("vla/instruction", "std_msgs/msg/String", RELIABLE_QOS)

    def publish_images() -> None:
        for topic, frame in frames.items():
            image_pubs[topic].publish(numpy_to_image(feed, frame, "rgb8", feed.now(), topic))

    def publish_state() -> None:
        state_pub.publish(feed.new("sensor_msgs/msg/JointState", header=feed.header(feed.now()),
                                   name=spec.joint_names, position=spec.home.astype(np.float64),
                                   velocity=np.zeros(0), effort=np.zeros(0)))

    feed.timer(1.0 / spec.cameras[0].rate, publish_images)
    feed.timer(1.0 / spec.state_rate, publish_state)
    try:
        bar = progress(None, f"policy: loading the {model_size} model", "s")
        while node.runtime is None and node.logic.state != "ERROR":
            if time.monotonic() - t_load > timeout:
                raise SystemExit(f"policy node: model not ready after {timeout:.0f} s")
            feed.spin_once(0.1)
            bar.update(0)
        bar.close()
        if node.runtime is None:
            raise SystemExit(f"policy node: {node.logic.message}")
        load_s = time.monotonic() - t_load
        say.publish(feed.new("std_msgs/msg/String", data="pick up the red cube"))
        want = n_chunks + warmup_chunks
        bar = progress(want, "policy: chunks", "chunk")
        end = time.monotonic() + timeout
        while len(node.chunk_timings) < want and time.monotonic() < end:
            feed.spin_once(0.05)
            bar.update(len(node.chunk_timings) - bar.n)
        bar.close()
        timings = list(node.chunk_timings)[warmup_chunks:]
        if not timings:
            raise SystemExit(f"policy node: no chunk within {timeout:.0f} s ({node.logic.waiting_for(feed.now())})")
        import torch

        return {
            "n": len(timings), "load_s": load_s, "warmup": warmup_chunks,
            "status": node.logic.status(feed.now()),
            "total": ms([t.total for t in timings]),
            "since_trigger": ms([t.since_trigger for t in timings]),
            "predict": ms([t.predict for t in timings]),
            "overhead": ms([t.overhead for t in timings]),
            "torch_threads": torch.get_num_threads(),
            "device": node.runtime.device,
        }
    finally:
        if model_size == "full":
            node.worker.close(timeout=None)  # let a long inference end before the interpreter does
        node.close()
        policy_port.shutdown()
        feed.shutdown()
        spinner.join(timeout=5.0)


# -- 2. bridge command period (processes over DDS) ----------------------------------------------
def set_realtime(pid: int, priority: int = 10) -> str:
    """SCHED_FIFO for every thread of ``pid`` (what ros2_control's ``thread_priority`` does for its
    control loop); returns why not, or ''."""
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            os.sched_setscheduler(int(tid), os.SCHED_FIFO, os.sched_param(priority))
    except (PermissionError, OSError, AttributeError) as exc:
        return f"SCHED_FIFO not permitted here ({exc})"
    return ""


def bridge_jitter(window: float, startup_timeout: float, env: dict, replan_threshold: float | None,
                  realtime: bool) -> dict:
    from vla_ros.launch_plan import node_plan
    from vla_ros.launcher import Launcher
    from vla_ros.transport.dds import DdsPort
    from vla_ros.transport.port import RELIABLE_QOS

    tick_file = Path(tempfile.mkstemp(prefix="vla_bridge_ticks_", suffix=".txt")[1])
    # normal scheduling first (the plan's realtime_priority is applied by this script in phase 3)
    extra = {"controller_bridge": {"timing_log": str(tick_file), "realtime_priority": 0},
             "policy_node": {} if replan_threshold is None else {"replan_threshold": replan_threshold}}
    plan = [dataclasses.replace(n, parameters={**n.parameters, **extra.get(n.executable, {})})
            for n in node_plan(ROBOT, MODEL, HARDWARE)]
    lines: list[tuple[str, str, float]] = []  # (node, line, time.monotonic() when read)
    launcher = Launcher(plan, env, output=None,
                        on_line=lambda name, line: lines.append((name, line, time.monotonic())))
    port = None
    seen = {"cmd": [], "chunks": [], "status": None}
    windows: dict[str, tuple[float, float]] = {}
    statuses: dict[str, object] = {}
    notes: list[str] = []
    n_lines_running = 0
    try:
        launcher.start()
        port = DdsPort("vla_ros_bench")
        port.subscribe("arm_controller/joint_trajectory", "trajectory_msgs/msg/JointTrajectory",
                       lambda m: seen["cmd"].append(time.monotonic()), RELIABLE_QOS)
        port.subscribe("vla/action_chunk", "vla_ros/msg/ActionChunk",
                       lambda m: seen["chunks"].append(time.monotonic()), RELIABLE_QOS)
        port.subscribe("vla/status", "vla_ros/msg/PolicyStatus", lambda m: seen.__setitem__("status", m),
                       RELIABLE_QOS)
        say = port.publisher("vla/instruction", "std_msgs/msg/String", RELIABLE_QOS)

        def spin_until(pred, timeout: float, bar=None) -> bool:
            t_start = time.monotonic()
            end = t_start + timeout
            while time.monotonic() < end and not pred():
                dead = {n: c for n, c in launcher.poll().items() if c is not None}
                if dead:
                    tail = "\n".join(f"[{n}] {l}" for n, l, _ in lines[-30:])
                    raise SystemExit(f"node(s) exited: {dead}\n{tail}")
                port.spin_once(0.05)
                if bar is not None:
                    bar.update(int(time.monotonic() - t_start) - bar.n)
            return pred()

        def ready() -> bool:
            s = seen["status"]
            return s is not None and s.state_name in ("IDLE", "WAITING", "RUNNING") and len(seen["cmd"]) > 10

        def record(key: str, desc: str) -> None:
            bar = progress(round(window), f"bridge: {desc}", "s")
            t0 = time.monotonic()
            spin_until(lambda: False, window, bar)
            bar.close()
            windows[key] = (t0, time.monotonic())
            statuses[key] = seen["status"]

        t_launch = time.monotonic()
        bar = progress(round(startup_timeout), "stack: starting 5 processes", "s")
        ok = spin_until(ready, startup_timeout, bar)
        bar.close()
        if not ok:
            tail = "\n".join(f"[{n}] {l}" for n, l, _ in lines[-30:])
            raise SystemExit(f"the stack was not ready within {startup_timeout:.0f} s\n{tail}")
        startup_s = time.monotonic() - t_launch
        spin_until(lambda: False, 1.0)  # let start-up work (imports, first frames) settle

        record("idle", "baseline, policy idle")
        if not spin_until(lambda: say.subscription_count > 0, 10.0):
            raise SystemExit("the policy node's vla/instruction reader was not matched within 10 s")
        say.publish(port.new("std_msgs/msg/String", data="pick up the red cube"))
        if not spin_until(lambda: len(seen["chunks"]) > 0, 30.0):
            raise SystemExit(f"no action chunk within 30 s; status: {getattr(seen['status'], 'waiting_for', None)}")
        spin_until(lambda: False, 1.0)  # the first chunks (cross-fade, start of motion)
        record("infer", "policy inferring")
        if realtime:
            why = set_realtime(launcher.procs["controller_bridge"].pid)
            if why:
                notes.append(why)
            else:
                spin_until(lambda: False, 0.2)
                record("infer_rt", "policy inferring, bridge SCHED_FIFO")
        n_lines_running = len(lines)
    finally:
        if port is not None:
            port.shutdown()
        codes = launcher.stop()  # the bridge writes its tick times as it shuts down
        ticks = np.loadtxt(tick_file, ndmin=1) if tick_file.stat().st_size else np.zeros(0)
        tick_file.unlink(missing_ok=True)
    bad = {n: c for n, c in codes.items() if c not in (0, None, -2)}
    timer_line = next((l for n, l, _ in lines if n == "controller_bridge" and "control timer:" in l), "")

    def periods(times, w):
        t = np.asarray([x for x in times if w[0] <= x <= w[1]])
        return ms(np.diff(t))

    def policy(key):
        st, (t0, t1) = statuses[key], windows[key]
        n = sum(t0 <= t <= t1 for t in seen["chunks"])
        lat = float(st.median_latency) if st is not None else float("nan")
        lost = sum(t0 <= t <= t1 for n_, l, t in lines if n_ == "controller_bridge" and LOST in l)
        return {"chunks": n, "latency_ms": lat * 1e3, "busy": lat * n / (t1 - t0), "lost": lost}

    return {
        "startup_s": startup_s, "exit_codes": bad, "timer_line": timer_line, "notes": notes,
        "arrival": {k: periods(seen["cmd"], w) for k, w in windows.items()},
        "timer": {k: periods(ticks, w) for k, w in windows.items()},
        "policy": {k: policy(k) for k in windows if k != "idle"},
        "warnings": [f"[{n}] {l.split('] ', 2)[-1]}" for n, l, _ in lines[:n_lines_running]
                     if "WARNING" in l or "ERROR" in l or "Traceback" in l],
        "raw": {"ticks": ticks, "cmd": np.asarray(seen["cmd"]), "chunks": np.asarray(seen["chunks"]),
                "windows": windows, "lines": lines},
    }


def period_stats(p: np.ndarray, nominal_ms: float) -> dict:
    jit = np.abs(p - nominal_ms)
    return {"n": len(p), "p50": pct(p, 50), "p99": pct(p, 99), "max": float(p.max()) if len(p) else float("nan"),
            "j50": pct(jit, 50), "j99": pct(jit, 99)}


PHASES = {"idle": "policy idle (baseline)", "infer": "policy inferring",
          "infer_rt": "inferring, bridge SCHED_FIFO 10"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=60, help="policy chunks measured (after 5 warm-up)")
    parser.add_argument("--window", type=float, default=10.0, help="seconds of bridge commands per phase")
    parser.add_argument("--startup-timeout", type=float, default=90.0)
    parser.add_argument("--replan-threshold", type=float, default=1.0,
                        help="policy_node replan_threshold in the stack: 1.0 (default) infers back to back, "
                             "the worst case for the bridge; 0.5 is the node's own default schedule")
    parser.add_argument("--model-size", choices=("tiny", "full"), default="tiny",
                        help="policy model for part 1: the tiny model, or SmolVLA at its real size (random "
                             "weights; part 2 is then skipped)")
    parser.add_argument("--no-realtime", action="store_true",
                        help="skip the phase with the bridge process at SCHED_FIFO (needs root or CAP_SYS_NICE)")
    args = parser.parse_args()

    # every process, this one included, stays on loopback
    env = dds_environment(loopback=True)
    if env.get("CYCLONEDDS_URI") != loopback_uri():
        print(f"note: CYCLONEDDS_URI={env.get('CYCLONEDDS_URI')} replaced by the loopback profile", flush=True)
        env["CYCLONEDDS_URI"] = loopback_uri()
    os.environ.update(env)
    logging.basicConfig(level=logging.WARNING, format="[%(levelname)s] [%(name)s] %(message)s")

    from vla_ros.policy.runtime import default_num_threads
    from vla_ros.robots import load_robot

    spec = load_robot(ROBOT)
    nominal = 1e3 / spec.control_rate
    t0 = time.monotonic()
    model = MODEL if args.model_size == "tiny" else "full-size SmolVLA"
    print(f"pipeline bench: robot {ROBOT}, model {model}, hardware {HARDWARE}; "
          f"{os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), torch threads per policy "
          f"process {default_num_threads()}; DDS {env['CYCLONEDDS_URI']}", flush=True)

    full = args.model_size == "full"
    p = policy_overhead(args.chunks, timeout=max(1800.0 if full else 120.0, args.startup_timeout),
                        model_size=args.model_size, warmup_chunks=1 if full else WARMUP_CHUNKS)
    st = p["status"]
    print(f"\n1. policy node overhead, {args.model_size} model (inproc, this process; model ready in "
          f"{p['load_s']:.1f} s, {p['device']}, torch threads {p['torch_threads']}), {p['n']} chunks after "
          f"{p['warmup']} warm-up; node status: computed {st['chunks_computed']}, published "
          f"{st['chunks_published']}, merged {st['chunks_merged']}, dropped {st['chunks_dropped']}:")
    print(f"   {'(ms)':<46}{'median':>10}{'p90':>10}{'max':>10}")
    rows = [("observation stamp -> chunk published", p["total"]),
            ("  of which inside runtime.predict_chunk", p["predict"]),
            ("  overhead (total - predict)", p["overhead"]),
            ("    input delivery (stamp -> node takes obs)", p["total"] - p["since_trigger"]),
            ("    node (takes obs -> published) - predict", p["since_trigger"] - p["predict"])]
    for name, v in rows:
        print(f"   {name:<46}{np.median(v):10.2f}{pct(v, 90):10.2f}{v.max():10.2f}")
    ratio = np.median(p["overhead"]) / np.median(p["predict"])
    print(f"   overhead / predict (medians): {ratio:.3f}")

    if full:
        print(f"\nsummary ({os.cpu_count()} CPUs, torch threads {p['torch_threads']}, full-size model, "
              f"run {time.monotonic() - t0:.0f} s; part 2 skipped)")
        print(f"{'figure':<60}{'measured':>10}{'goal':>8}")
        for name, value, goal in [("policy overhead median, full-size model (ms)", np.median(p["overhead"]), "< 5"),
                                  ("policy overhead p90, full-size model (ms)", pct(p["overhead"], 90), ""),
                                  ("raw predict median, full-size model (ms)", np.median(p["predict"]), ""),
                                  ("overhead / predict", ratio, "")]:
            print(f"{name:<60}{value:10.3f}{goal:>8}")
        return 0
    b = bridge_jitter(args.window, args.startup_timeout, env, args.replan_threshold, not args.no_realtime)
    print(f"\n2. controller_bridge command period at {spec.control_rate:g} Hz (nominal {nominal:.1f} ms), 5 node "
          f"processes over DDS on loopback (ready in {b['startup_s']:.1f} s), {args.window:g} s per phase, "
          f"policy replan_threshold {args.replan_threshold:g}")
    for key, pol in b["policy"].items():
        print(f"   {PHASES[key]}: {pol['chunks']} chunks, median inference {pol['latency_ms']:.1f} ms, "
              f"policy busy ~{100 * pol['busy']:.0f}% of the window; the bridge logged 'policy lost' "
              f"{pol['lost']} times (the policy process was alive)")
    print(f"   {'period (ms)':<52}{'n':>5}{'p50':>8}{'p99':>8}{'max':>8}{'|dev| p50':>10}{'|dev| p99':>10}")
    stats = {}
    for source, label in (("arrival", "arrival in the bench process"), ("timer", "bridge's own timer callback")):
        for key in b[source]:
            s = stats[source, key] = period_stats(b[source][key], nominal)
            name = f"{label}, {PHASES[key]}"
            print(f"   {name:<52}{s['n']:>5}{s['p50']:8.2f}{s['p99']:8.2f}{s['max']:8.2f}{s['j50']:10.3f}{s['j99']:10.3f}")
    for source in ("arrival", "timer"):
        idle, inf = stats[source, "idle"], stats[source, "infer"]
        print(f"   {source}: jitter p99 inferring / idle = {inf['j99'] / idle['j99']:.2f}")
    if b["timer_line"]:
        print(f"   bridge log at shutdown (whole run): {b['timer_line'].split('] ', 2)[-1].split(' (tick')[0]}")
    from collections import Counter

    warnings = [f"{line} (x{n})" if n > 1 else line for line, n in Counter(b["warnings"]).items()]
    for line in b["notes"] + [f"node exit codes: {b['exit_codes']}"] * bool(b["exit_codes"]) + warnings[:5]:
        print(f"   note: {line}")

    print(f"\nsummary ({os.cpu_count()} CPUs, torch threads {p['torch_threads']} per policy process, "
          f"run {time.monotonic() - t0:.0f} s)")
    print(f"{'figure':<60}{'measured':>10}{'goal':>8}")
    table = [
        ("policy overhead median (ms)", np.median(p["overhead"]), "<= 5"),
        ("policy overhead p90 (ms)", pct(p["overhead"], 90), ""),
        ("raw predict median (ms)", np.median(p["predict"]), ""),
        ("overhead / predict", ratio, ""),
    ]
    for key in b["timer"]:
        goal = "<= 2" if key == "infer" else ""
        table.append((f"bridge jitter p99, own timer, {PHASES[key]} (ms)", stats["timer", key]["j99"], goal))
    for key in b["arrival"]:
        table.append((f"bridge jitter p99, arrival, {PHASES[key]} (ms)", stats["arrival", key]["j99"], ""))
    for name, value, goal in table:
        print(f"{name:<60}{value:10.3f}{goal:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
