"""``vla-ros demo``: the whole stack on the embedded defaults, watched from outside.

Starts the launch plan's nodes as processes over Cyclone DDS (loopback), waits for the model,
sends an instruction, watches ``vla/action_chunk``, ``joint_states`` and ``vla/status`` like any
other DDS participant, and prints what it saw. Exit code 0 when chunks arrived well formed and the
mock arm moved inside its limits.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .launch_plan import node_plan_from


@dataclass
class Watch:
    chunks: list = field(default_factory=list)  # (receive time, msg)
    states: list = field(default_factory=list)  # (names, positions)
    status: object = None


def run_demo(args: argparse.Namespace) -> int:
    from .launcher import Launcher, dds_environment
    from .robots import load_robot
    from .transport import make_port
    from .transport.port import RELIABLE_QOS, STATE_QOS
    from .transport.types import stamp_to_sec
    import os

    spec = load_robot(args.robot)
    plan = node_plan_from(args)
    env = dds_environment(loopback=not args.network)
    os.environ.update(env)
    print(f"demo: {spec.name} ({spec.dof} joints), model {args.model}, hardware {args.hardware}; "
          f"nodes: {', '.join(n.name for n in plan)}", flush=True)
    launcher = Launcher(plan, env, output=None if args.quiet else sys.stdout).start()
    port = make_port("vla_ros_demo", "dds", namespace=args.namespace)
    w = Watch()
    port.subscribe("vla/action_chunk", "vla_ros/msg/ActionChunk", lambda m: w.chunks.append((port.now(), m)), RELIABLE_QOS)
    port.subscribe("joint_states", "sensor_msgs/msg/JointState",
                   lambda m: w.states.append((list(m.name), np.asarray(m.position, dtype=float).copy())), STATE_QOS)
    port.subscribe("vla/status", "vla_ros/msg/PolicyStatus", lambda m: setattr(w, "status", m), RELIABLE_QOS)
    say = port.publisher("vla/instruction", "std_msgs/msg/String", RELIABLE_QOS)

    def spin_until(pred, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred():
                return True
            if any(c is not None for c in launcher.poll().values()):
                return False
            port.spin_once(0.05)
        return pred()

    ok = False
    try:
        t0 = time.monotonic()
        ready = spin_until(lambda: w.status is not None and w.status.state_name in ("IDLE", "WAITING", "RUNNING"),
                           args.startup_timeout)
        if not ready:
            dead = {n: c for n, c in launcher.poll().items() if c is not None}
            why = f"node(s) exited: {dead}" if dead else f"model not ready after {args.startup_timeout:.0f} s"
            if w.status is not None and w.status.message:
                why += f" ({w.status.message})"
            print(f"demo: FAILED: {why}", flush=True)
            return 1
        print(f"demo: model ready after {time.monotonic() - t0:.1f} s; saying {args.instruction!r}", flush=True)
        spin_until(lambda: say.subscription_count > 0, 10.0)
        say.publish(port.new("std_msgs/msg/String", data=args.instruction))
        if not spin_until(lambda: len(w.chunks) > 0, 30.0):
            print(f"demo: FAILED: no action chunk within 30 s; status: "
                  f"{getattr(w.status, 'waiting_for', None)} {getattr(w.status, 'message', '')}", flush=True)
            return 1
        n_states0 = len(w.states)
        spin_until(lambda: False, args.duration)
        ok = summarize(spec, w, n_states0, args.duration, stamp_to_sec)
        return 0 if ok else 1
    finally:
        port.shutdown()
        codes = launcher.stop()
        bad = {n: c for n, c in codes.items() if c not in (0, None, -2)}
        if bad:
            print(f"demo: node exit codes {bad}", flush=True)


def summarize(spec, w: Watch, n_states0: int, duration: float, stamp_to_sec) -> bool:
    chunks = w.chunks
    names_ok = all(list(m.joint_names) == spec.joint_names for _, m in chunks)
    shape_ok = all(m.action_dim == spec.dof and len(m.actions) == m.horizon * m.action_dim for _, m in chunks)
    finite_ok = all(np.all(np.isfinite(np.asarray(m.actions))) for _, m in chunks)
    ages = [t - stamp_to_sec(m.header.stamp) for t, m in chunks]
    stamps_ok = all(0.0 <= a < 2.0 for a in ages)
    lat = [m.inference_latency for _, m in chunks]
    states = [q for names, q in w.states if names == spec.joint_names]
    q = np.array(states) if states else np.zeros((0, spec.dof))
    inside = bool(np.all((q >= spec.lower - 1e-6) & (q <= spec.upper + 1e-6))) if len(q) else False
    moved = float(np.max(np.abs(q - q[0]))) if len(q) else 0.0
    span = chunks[-1][0] - chunks[0][0] if len(chunks) > 1 else 0.0
    print("\n=== vla_ros demo summary ===")
    print(f"action chunks received   : {len(chunks)} ({(len(chunks) - 1) / span if span else 0:.2f}/s), "
          f"{chunks[0][1].horizon} steps x {chunks[0][1].action_dim} joints, step {chunks[0][1].step_period * 1e3:.1f} ms")
    print(f"joint names / shape      : {'ok' if names_ok and shape_ok else 'MISMATCH'} ({', '.join(spec.joint_names)})")
    print(f"all actions finite       : {'yes' if finite_ok else 'NO'}")
    print(f"observation age at arrival: median {np.median(ages) * 1e3:.1f} ms (max {max(ages) * 1e3:.1f} ms)")
    print(f"inference latency        : median {np.median(lat) * 1e3:.1f} ms")
    print(f"joint_states received    : {len(w.states)}; arm moved up to {moved:.3f} rad; "
          f"inside limits: {'yes' if inside else 'NO'}")
    if w.status is not None:
        s = w.status
        print(f"policy status            : {s.state_name}, computed {s.chunks_computed}, published "
              f"{s.chunks_published}, dropped {s.chunks_dropped}, rejected inputs {s.observations_rejected}")
    ok = names_ok and shape_ok and finite_ok and stamps_ok and inside and moved > 1e-3 and len(chunks) >= 2
    print(f"result                   : {'OK' if ok else 'FAILED'}")
    return ok
