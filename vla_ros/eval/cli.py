"""``vla-ros`` sub-commands of the eval layer: ``record``, ``replay``, ``eval``, ``convert``.

    vla-ros record [-o BAG] --robot so100 [--storage mcap|sqlite3] [--duration S]
    vla-ros replay BAG [--rate 1.0] [--start-offset S] [--loop] [--topics T ...] [--remap FROM:=TO ...]
    vla-ros eval BAG_OR_DATASET --robot so100 --model full --model frozen [--checkpoint full=DIR] [--every K]
    vla-ros convert BAG DATASET_DIR --robot so100        # rosbag2 -> LeRobotDataset v3
    vla-ros convert DATASET_DIR BAG --robot so100        # LeRobotDataset v3 -> rosbag2
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

RECORD_EPILOG = """Records the robot's cameras (camera/<name>/image_raw), joint_states, the controller's
joint_trajectory commands and vla/instruction, vla/action_chunk, vla/status, vla/enable, vla/estop
(or exactly --topics). Ctrl-C (or SIGTERM) stops and closes the bag: it is valid and complete.
Bags are rosbag2 version 9 (ROS 2 Jazzy and newer); pass --bag-version 8 for Humble's `ros2 bag play`."""

REPLAY_EPILOG = """Header stamps are moved to the time of playing (each keeps its distance to its bag time), so the
live nodes see fresh inputs; --no-restamp publishes the recorded stamps. On ROS 2, `ros2 bag play BAG`
does the same with rclpy nodes (run them with use_sim_time and --clock for recorded time)."""

EVAL_EPILOG = """Every observation (or every K-th) of the recording goes through each model with the
same runtime as policy_node (fixed flow-matching seeds), and the chunks are compared with the recorded
commands (or the following joint states when none were recorded). Writes metrics.json, metrics.csv,
summary.csv, PNG plots and report.html into --out. Models: the names of config/models
(full, frozen, distilled, l1, tiny); --checkpoint NAME=DIR_OR_HUB_ID replaces one's checkpoint."""

CONVERT_EPILOG = """The direction follows SOURCE: a LeRobot dataset directory (meta/info.json) becomes a rosbag2,
anything else is read as a rosbag2 and becomes a LeRobotDataset v3. Dataset units are the policy's
(SO-100: degrees, gripper 0..100, names like shoulder_pan.pos); bags use radians."""


def _pairs(items: list[str] | None, what: str, sep: str = "=") -> dict[str, str]:
    out = {}
    for item in items or []:
        key, ok, value = item.replace(":=", "=").partition(sep)
        if not ok or not key or not value:
            raise ValueError(f"{what}: expected NAME{sep}VALUE, got '{item}'")
        out[key] = value
    return out


def _robot(name: str):
    from vla_ros.robots import load_robot

    return load_robot(name)


def _dds_port(name: str, args: argparse.Namespace):
    from vla_ros.transport import make_port
    from vla_ros.transport.dds_env import loopback_env

    env = dict(os.environ)
    env["VLA_ROS_TRANSPORT"] = "dds"
    if not args.network:
        env = loopback_env(env)
    os.environ.update(env)
    return make_port(name, "dds", namespace=args.namespace)


def cmd_record(args: argparse.Namespace) -> int:
    from .bagio import BagWriter
    from .live import Recorder, parse_topics, robot_topics, stop_on_signals

    robot = _robot(args.robot)
    topics = parse_topics(args.topics) if args.topics else robot_topics(robot, args.compressed)
    topics.update(parse_topics(args.extra or []))
    for t in args.exclude or []:
        topics.pop(t.strip("/"), None)
        topics.pop(t, None)
    output = args.output or f"vla_ros_{time.strftime('%Y_%m_%d-%H_%M_%S')}"
    port = _dds_port("vla_ros_recorder", args)
    try:
        with stop_on_signals(threading.Event()) as stop:
            bag = BagWriter(output, storage=args.storage, version=args.bag_version)
            try:
                rec = Recorder(port, bag, topics)
                print(f"vla-ros: recording {len(topics)} topics to {output} ({args.storage}); Ctrl-C stops",
                      file=sys.stderr)
                rec.run(args.duration, progress=not args.quiet, stop=stop)
            except BaseException:
                port.shutdown()
                bag.abort()
                raise
            port.shutdown()
            bag.close()
    finally:
        port.shutdown()
    total = sum(bag.counts.values())
    print(f"vla-ros: wrote {total} messages to {output}: " + ", ".join(f"{t} {n}" for t, n in bag.counts.items()))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from .bagio import BagReader
    from .live import PlayOptions, Replayer, sigterm_as_interrupt

    bag = BagReader(args.bag)
    opts = PlayOptions(rate=args.rate, start_offset=args.start_offset, duration=args.duration, loop=args.loop,
                       topics=args.topics or None, remap=_pairs(args.remap, "--remap"), restamp=not args.no_restamp,
                       wait=args.wait)
    port = _dds_port("vla_ros_player", args)
    try:
        with sigterm_as_interrupt():
            player = Replayer(port, bag, opts)
            print(f"vla-ros: playing {bag.path} ({bag.duration:.1f} s, {len(player.publishers)} topics) at "
                  f"x{args.rate}{' in a loop' if args.loop else ''}; Ctrl-C stops", file=sys.stderr)
            try:
                player.run(progress=not args.quiet)
            except KeyboardInterrupt:
                pass
    finally:
        port.shutdown()
        bag.close()
    print(f"vla-ros: published {player.published} messages")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import EvalConfig, evaluate, load_runtimes
    from .recording import load_recording
    from .report import write_report

    robot = _robot(args.robot)
    models = args.model or ["tiny"]
    rec = load_recording(args.source, robot, cameras=_pairs(args.camera, "--camera"), instruction=args.instruction)
    runtimes = load_runtimes(robot, models, _pairs(args.checkpoint, "--checkpoint"), device=args.device)
    result = evaluate(rec, runtimes, EvalConfig(every=args.every, seed=args.seed,
                                                max_observations=args.max_observations, progress=not args.quiet))
    out = Path(args.out or f"eval-{Path(args.source).resolve().name}")
    paths = write_report(result, out, plots=not args.no_plots)
    for name, m in result.metrics.items():
        lat = m.get("latency_ms", {})
        l1 = m.get("l1")
        fs = (m.get("final_step") or {}).get("l1")
        ga = (m.get("gripper_agreement") or {}).get("mean")
        sm = (m.get("smoothness") or {}).get("boundary_step_ratio")
        print(f"{name:>10}: L1 {l1 if l1 is None else round(l1, 4)} rad, final-step L1 "
              f"{fs if fs is None else round(fs, 4)}, gripper agreement {ga if ga is None else round(ga, 3)}, "
              f"latency median {lat.get('median', float('nan')):.1f} ms, boundary step ratio "
              f"{sm if sm is None else round(sm, 2)}")
    print(f"vla-ros: {len(result.plan_times)} observations; report {paths['html']}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .convert import bag_to_dataset, dataset_to_bag
    from .recording import is_lerobot_dataset

    robot = _robot(args.robot)
    cams = _pairs(args.camera, "--camera")
    if is_lerobot_dataset(args.source):
        summary = dataset_to_bag(args.source, args.output, robot, storage=args.storage, version=args.bag_version,
                                 camera_keys=cams, progress=not args.quiet)
    else:
        summary = bag_to_dataset(args.source, args.output, robot, fps=args.fps, videos=not args.images,
                                 vcodec=args.vcodec, camera_topics=cams, instruction=args.instruction,
                                 progress=not args.quiet)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _guard(func):
    """Bag, dataset and model errors end the command with their message (exit status 2)."""
    def run(args: argparse.Namespace) -> int:
        from vla_ros.policy.errors import CheckpointError

        try:
            return func(args)
        except (ValueError, CheckpointError, FileNotFoundError) as exc:
            print(f"vla-ros {args.command}: {exc}", file=sys.stderr)
            return 2
    return run


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add this layer's sub-commands to the ``vla-ros`` parser."""
    from .bagio import BAG_VERSIONS, STORAGES

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--namespace", default="", help="namespace of relative topic names")
        p.add_argument("--network", action="store_true",
                       help="use Cyclone DDS's own network settings (default: loopback only)")

    def bag_format(p: argparse.ArgumentParser) -> None:
        p.add_argument("--storage", default="mcap", choices=STORAGES, help="bag storage (default mcap)")
        p.add_argument("--bag-version", type=int, default=9, choices=BAG_VERSIONS,
                       help="rosbag2 metadata version: 9 (Jazzy and newer, default) or 8 (also Humble)")

    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("record", help="record the live topics to a rosbag2", epilog=RECORD_EPILOG, formatter_class=fmt)
    p.add_argument("-o", "--output", help="bag directory to create (default vla_ros_<date-time>)")
    p.add_argument("--robot", default="so100", help="robot whose topics to record (config/robots)")
    p.add_argument("--topics", nargs="+", metavar="TOPIC[:TYPE]", help="record exactly these topics")
    p.add_argument("--extra", nargs="+", metavar="TOPIC[:TYPE]", help="record these topics too")
    p.add_argument("--exclude", nargs="+", metavar="TOPIC", help="leave these topics out")
    p.add_argument("--compressed", action="store_true", help="also record camera/<name>/image_raw/compressed")
    p.add_argument("--duration", type=float, default=0.0, help="stop after S seconds (0: at Ctrl-C)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    bag_format(p)
    common(p)
    p.set_defaults(func=_guard(cmd_record))

    p = sub.add_parser("replay", help="play a rosbag2 onto the transport with its original timing",
                       epilog=REPLAY_EPILOG, formatter_class=fmt)
    p.add_argument("bag", help="rosbag2 directory (or .mcap / .db3 file)")
    p.add_argument("--rate", type=float, default=1.0, help="speed factor (2: twice as fast)")
    p.add_argument("--start-offset", type=float, default=0.0, help="skip the first S seconds of the bag")
    p.add_argument("--duration", type=float, default=0.0, help="play S seconds of the bag (0: to the end)")
    p.add_argument("--loop", action="store_true", help="play again and again until Ctrl-C")
    p.add_argument("--topics", nargs="+", metavar="TOPIC", help="play only these topics")
    p.add_argument("--remap", nargs="+", metavar="FROM:=TO", help="publish topic FROM of the bag as TO")
    p.add_argument("--no-restamp", action="store_true", help="publish the recorded header stamps")
    p.add_argument("--wait", type=float, default=2.0, help="seconds to wait for subscribers before playing")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    common(p)
    p.set_defaults(func=_guard(cmd_replay))

    p = sub.add_parser("eval", help="evaluate models offline on a rosbag2 or a LeRobot dataset",
                       epilog=EVAL_EPILOG, formatter_class=fmt)
    p.add_argument("source", metavar="BAG_OR_DATASET")
    p.add_argument("--robot", default="so100", help="robot the recording is from (config/robots)")
    p.add_argument("--model", action="append", help="model variant to evaluate (repeat for several; default tiny)")
    p.add_argument("--checkpoint", action="append", metavar="NAME=DIR", help="checkpoint of model NAME")
    p.add_argument("--device", default="", help="device for every model (auto, cpu, cuda, mps)")
    p.add_argument("--every", type=int, default=1, help="evaluate every K-th observation")
    p.add_argument("--max-observations", type=int, default=None, help="stop after N observations")
    p.add_argument("--seed", type=int, default=0, help="flow-matching noise seed (plus the observation index)")
    p.add_argument("--camera", action="append", metavar="NAME=TOPIC",
                   help="topic (or dataset image key) of robot camera NAME")
    p.add_argument("--instruction", help="instruction to use when the bag has none")
    p.add_argument("--out", help="output directory (default eval-<source name>)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots (the report has no images)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_guard(cmd_eval))

    p = sub.add_parser("convert", help="rosbag2 <-> LeRobotDataset v3", epilog=CONVERT_EPILOG, formatter_class=fmt)
    p.add_argument("source", help="a rosbag2, or a LeRobot dataset directory")
    p.add_argument("output", help="the dataset directory / bag to create")
    p.add_argument("--robot", default="so100", help="robot of the recording (config/robots)")
    p.add_argument("--fps", type=float, default=None, help="dataset frame rate (default the robot's policy_fps)")
    p.add_argument("--images", action="store_true", help="store PNG images instead of videos")
    p.add_argument("--vcodec", default="libsvtav1", help="video codec for the dataset (LeRobot's choices)")
    p.add_argument("--camera", action="append", metavar="NAME=TOPIC_OR_KEY",
                   help="bag topic / dataset image key of robot camera NAME")
    p.add_argument("--instruction", help="task to use when the bag has no instruction")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    bag_format(p)
    p.set_defaults(func=_guard(cmd_convert))
