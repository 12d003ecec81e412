"""``vla-ros``: the ROS-free launcher and tools.

    vla-ros launch --robot so100 --model tiny --hardware mock   # the four nodes over Cyclone DDS
    vla-ros say "pick up the red cube"                          # send an instruction
    vla-ros echo vla/action_chunk                               # watch a topic
    vla-ros enable | estop | status
    vla-ros demo                                                # launch, instruct, watch, summarize
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Any

import numpy as np

from .launch_plan import LAUNCH_ARGUMENTS, node_plan_from

#: Types of the topics users name on the command line (relative names).
TOPIC_TYPES = {
    "vla/instruction": "std_msgs/msg/String",
    "vla/action_chunk": "vla_ros/msg/ActionChunk",
    "vla/status": "vla_ros/msg/PolicyStatus",
    "vla/enable": "std_msgs/msg/Bool",
    "vla/estop": "std_msgs/msg/Bool",
    "joint_states": "sensor_msgs/msg/JointState",
}


def _topic_type(topic: str, given: str | None) -> str:
    if given:
        return given
    name = topic.strip("/")
    if name in TOPIC_TYPES:
        return TOPIC_TYPES[name]
    if name.endswith("/image_raw"):
        return "sensor_msgs/msg/Image"
    if name.endswith("/compressed"):
        return "sensor_msgs/msg/CompressedImage"
    if name.endswith("/joint_trajectory"):
        return "trajectory_msgs/msg/JointTrajectory"
    raise SystemExit(f"vla-ros: don't know the type of '{topic}'; pass --type pkg/msg/Type")


def _port(name: str, args: argparse.Namespace):
    """A dds port for a tool (loopback-only unless --network)."""
    from .launcher import dds_environment
    from .transport import make_port

    os.environ.update(dds_environment(loopback=not args.network, base=dict(os.environ)))
    return make_port(name, "dds", namespace=args.namespace)


def _wait_for_subscriber(port, pub, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pub.subscription_count > 0:
            time.sleep(0.2)  # let discovery finish on both sides
            return True
        port.spin_once(0.05)
    return False


def _publish_once(args: argparse.Namespace, topic: str, msg_type: str, **fields: Any) -> int:
    from .transport.port import LATCHED_QOS, RELIABLE_QOS

    port = _port("vla_ros_cli", args)
    try:
        qos = LATCHED_QOS if msg_type == "std_msgs/msg/Bool" else RELIABLE_QOS
        pub = port.publisher(topic, msg_type, qos)
        if not _wait_for_subscriber(port, pub, args.wait):
            print(f"vla-ros: no subscriber on {port.resolve(topic)} after {args.wait:.0f} s; publishing anyway",
                  file=sys.stderr)
        pub.publish(port.new(msg_type, **fields))
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            port.spin_once(0.05)
        print(f"published on {port.resolve(topic)}: {fields}")
        return 0
    finally:
        port.shutdown()


def format_message(msg: Any, msg_type: str) -> str:
    """One line for a message, readable for the types this package uses."""
    from .transport.types import stamp_to_sec

    if msg_type == "vla_ros/msg/ActionChunk":
        a = np.asarray(msg.actions, dtype=np.float32).reshape(msg.horizon, msg.action_dim)
        return (f"chunk {msg.chunk_id} stamp {stamp_to_sec(msg.header.stamp):.3f} {msg.horizon}x{msg.action_dim} "
                f"dt {msg.step_period:.4f} model {msg.model_variant} latency {msg.inference_latency * 1e3:.1f} ms "
                f"first {np.round(a[0], 3).tolist()}")
    if msg_type == "vla_ros/msg/PolicyStatus":
        return (f"{msg.state_name} model {msg.model_variant} '{msg.instruction}' latency "
                f"{msg.median_latency * 1e3:.1f} ms chunks {msg.chunks_published} (merged {msg.chunks_merged}, "
                f"dropped {msg.chunks_dropped}) "
                f"rate {msg.chunk_rate:.2f}/s waiting {list(msg.waiting_for)} {msg.message}")
    if msg_type == "sensor_msgs/msg/JointState":
        return f"{stamp_to_sec(msg.header.stamp):.3f} " + " ".join(
            f"{n}={p:.3f}" for n, p in zip(msg.name, np.asarray(msg.position)))
    if msg_type in ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"):
        size = f"{msg.width}x{msg.height} {msg.encoding}" if hasattr(msg, "width") else msg.format
        return f"{stamp_to_sec(msg.header.stamp):.3f} {size} {len(msg.data)} bytes"
    if hasattr(msg, "data"):
        return repr(msg.data)
    return repr(msg)


def cmd_launch(args: argparse.Namespace) -> int:
    from .launcher import Launcher, dds_environment

    plan = node_plan_from(args)
    print(f"vla-ros: starting {', '.join(n.name for n in plan)} over Cyclone DDS "
          f"({'loopback only' if not args.network else 'network'}); Ctrl-C stops")
    launcher = Launcher(plan, dds_environment(loopback=not args.network)).start()
    try:
        while True:
            time.sleep(0.5)
            codes = launcher.poll()
            dead = {n: c for n, c in codes.items() if c is not None}
            if len(dead) == len(codes):
                print(f"vla-ros: all nodes exited: {dead}")
                return max(dead.values(), default=0)
    except KeyboardInterrupt:
        return 0
    finally:
        launcher.stop()


def cmd_echo(args: argparse.Namespace) -> int:
    from .transport.port import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS

    msg_type = _topic_type(args.topic, args.type)
    qos = SENSOR_QOS if "Image" in msg_type else LATCHED_QOS if msg_type == "std_msgs/msg/Bool" else RELIABLE_QOS
    port = _port("vla_ros_echo", args)
    seen = [0]

    def on_msg(msg: Any) -> None:
        seen[0] += 1
        print(format_message(msg, msg_type), flush=True)

    port.subscribe(args.topic, msg_type, on_msg, qos)
    end = time.monotonic() + (args.timeout if args.timeout > 0 else float("inf"))
    try:
        while time.monotonic() < end and (args.count <= 0 or seen[0] < args.count):
            port.spin_once(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        port.shutdown()
    return 0 if seen[0] or args.timeout <= 0 else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vla-ros", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--namespace", default="", help="node/topic namespace")
        p.add_argument("--network", action="store_true",
                       help="use Cyclone DDS's own network settings (default: loopback only)")

    def launch_args(p: argparse.ArgumentParser) -> None:
        for arg in LAUNCH_ARGUMENTS:
            if arg.name == "namespace":
                continue
            p.add_argument(f"--{arg.name}", default=arg.default, choices=arg.choices, help=arg.description)

    p = sub.add_parser("launch", help="start the four nodes as processes over Cyclone DDS")
    launch_args(p)
    common(p)
    p.set_defaults(func=cmd_launch)

    p = sub.add_parser("say", help="send an instruction on vla/instruction")
    p.add_argument("text")
    p.add_argument("--wait", type=float, default=10.0, help="seconds to wait for the policy node to be discovered")
    common(p)
    p.set_defaults(func=lambda a: _publish_once(a, "vla/instruction", "std_msgs/msg/String", data=a.text))

    for name, topic, value, text in (("enable", "vla/enable", True, "let the bridge move the robot"),
                                     ("disable", "vla/enable", False, "make the bridge hold"),
                                     ("estop", "vla/estop", True, "latched stop until enable")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--wait", type=float, default=5.0)
        common(p)
        p.set_defaults(func=lambda a, t=topic, v=value: _publish_once(a, t, "std_msgs/msg/Bool", data=v))

    p = sub.add_parser("echo", help="print the messages on a topic")
    p.add_argument("topic")
    p.add_argument("--type", help="message type (pkg/msg/Type) when it can't be guessed")
    p.add_argument("--count", type=int, default=0, help="stop after N messages (0: never)")
    p.add_argument("--timeout", type=float, default=0.0, help="stop after S seconds (0: never)")
    common(p)
    p.set_defaults(func=cmd_echo)

    p = sub.add_parser("status", help="print one vla/status message")
    p.add_argument("--timeout", type=float, default=5.0)
    common(p)
    p.set_defaults(func=lambda a: cmd_echo(argparse.Namespace(**vars(a), topic="vla/status", type=None, count=1)))

    p = sub.add_parser("demo", help="run the stack on the embedded defaults and print a summary")
    launch_args(p)
    p.add_argument("--instruction", default="pick up the red cube")
    p.add_argument("--duration", type=float, default=10.0, help="seconds to watch after the first chunk")
    p.add_argument("--startup-timeout", type=float, default=300.0,
                   help="seconds to wait for the model to be ready (the tiny model is built on first use)")
    p.add_argument("--quiet", action="store_true", help="don't print the nodes' output")
    common(p)
    p.set_defaults(func=cmd_demo)

    from .eval.cli import add_parsers as add_eval_parsers  # record, replay, eval, convert
    from .train.cli import add_parsers as add_train_parsers  # finetune, distill

    add_eval_parsers(sub)
    add_train_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("VLA_ROS_LOG_LEVEL", "WARNING").upper(),
                        format="[%(levelname)s] [%(name)s] %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:  # unknown robot/model and other configuration errors
        print(f"vla-ros: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
