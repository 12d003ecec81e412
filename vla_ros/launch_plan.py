"""The node list for a launch, as data, with no ROS import.

``launch/vla.launch.py`` (ROS 2) and ``vla-ros launch`` (no ROS) both build their processes from
:func:`node_plan`, so the two cannot drift apart.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .paths import config_dir

HARDWARE = ("mock", "real")


@dataclass(frozen=True)
class LaunchArgument:
    name: str
    default: str
    description: str
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class NodeSpec:
    executable: str  # camera_publisher | state_publisher | policy_node | controller_bridge
    name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()
    namespace: str = ""

    def ros_args(self) -> list[str]:
        """The ``--ros-args`` command line that gives this node its name and parameters."""
        args = ["--ros-args", "-r", f"__node:={self.name}"]
        if self.namespace:
            args += ["-r", f"__ns:=/{self.namespace.strip('/')}"]
        for key, value in self.parameters.items():
            args += ["-p", f"{key}:={_ros_value(value)}"]
        for src, dst in self.remappings:
            args += ["-r", f"{src}:={dst}"]
        return args


def _ros_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_ros_value(v) if not isinstance(v, str) else repr(v) for v in value) + "]"
    return str(value)


def _names(kind: str) -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in config_dir(kind).glob("*.yaml")))


def launch_arguments() -> tuple[LaunchArgument, ...]:
    return (
        LaunchArgument("robot", "so100", "Robot description from config/robots", _names("robots")),
        LaunchArgument("model", "tiny", "Model variant from config/models", _names("models")),
        LaunchArgument("hardware", "mock", "mock: simulated arm and synthetic cameras; real: the robot's driver and camera devices", HARDWARE),
        LaunchArgument("checkpoint", "", "Override the variant's checkpoint: a hub id or a LeRobot checkpoint directory"),
        LaunchArgument("device", "auto", "Inference device: auto, cpu, cuda, cuda:N or mps"),
        LaunchArgument("dtype", "", "Weights dtype: auto, float32 or bfloat16; empty: the model's",
                       ("", "auto", "float32", "bfloat16")),
        LaunchArgument("namespace", "", "Namespace for every node (several robots on one network)"),
        LaunchArgument("driver", "", "hardware:=real: the robot driver (so100: ros2_control, lerobot; aloha: "
                       "interbotix; rby1: sdk, ros2); empty: the robot's real_driver"),
        LaunchArgument("dry_run", "false", "true: the bridge publishes its commands on vla/command_preview "
                       "only; nothing is sent to the robot", ("false", "true")),
    )


LAUNCH_ARGUMENTS = launch_arguments()


def node_plan_from(args) -> list[NodeSpec]:
    """:func:`node_plan` for an object with one attribute per launch argument (parsed CLI args)."""
    return node_plan(**{a.name: getattr(args, a.name, a.default) for a in LAUNCH_ARGUMENTS})


def _check(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; valid {name}s: {', '.join(choices)}")


def node_plan(
    robot: str = "so100",
    model: str = "tiny",
    hardware: str = "mock",
    checkpoint: str = "",
    device: str = "auto",
    namespace: str = "",
    driver: str = "",
    dry_run: str | bool = False,
    dtype: str = "",
) -> list[NodeSpec]:
    """The nodes to start for these launch arguments.

    The state publisher runs whenever joint states come from it: the mock, an in-process hardware
    driver (SO-100 ``lerobot``, RB-Y1 ``sdk``) or a relay of an external driver's joint states
    (ALOHA ``interbotix``, RB-Y1 ``ros2``); with SO-100 ``ros2_control`` the joint_state_broadcaster
    publishes them. The external drivers themselves (ros2_control, the Interbotix xs_sdk, rby1_ros2)
    are launched by their own packages.
    """
    from .robots import load_robot, needs_state_publisher, resolve_driver

    _check("robot", robot, _names("robots"))
    _check("model", model, _names("models"))
    _check("hardware", hardware, HARDWARE)
    _check("dtype", dtype, ("", "auto", "float32", "bfloat16"))
    if isinstance(dry_run, str):
        _check("dry_run", dry_run.lower(), ("false", "true"))
        dry_run = dry_run.lower() == "true"
    spec = load_robot(robot)
    mock = hardware == "mock"
    try:
        driver = resolve_driver(spec, driver, hardware)
    except ValueError as exc:
        raise ValueError(f"{exc} (launch arguments robot:={robot} hardware:={hardware} driver:={driver})") from None
    nodes: list[NodeSpec] = []
    if needs_state_publisher(spec, driver):
        nodes.append(NodeSpec("state_publisher", "state_publisher", {"robot": robot, "driver": driver}))
    for cam in spec.cameras:
        nodes.append(NodeSpec("camera_publisher", f"camera_{cam.name}", {
            "robot": robot,
            "camera_name": cam.name,
            "source": "synthetic" if mock else "device",
            "device": "" if mock else cam.device,
            "width": cam.width,
            "height": cam.height,
            "rate": cam.rate,
            "encoding": cam.encoding,
        }))
    nodes.append(NodeSpec("policy_node", "policy_node", {
        "robot": robot,
        "model": model,
        "checkpoint": checkpoint,
        "device": device,
        **({"dtype": dtype} if dtype else {}),
        "camera_topics": [c.topic for c in spec.cameras],
        "image_keys": [c.policy_key for c in spec.cameras],
    }))
    bridge = {
        "robot": robot,
        "start_enabled": mock,
        # SCHED_FIFO control loop where the system allows it (as ros2_control does); a warning otherwise
        "realtime_priority": 50,
    }
    if not mock:
        bridge["driver"] = driver
        safety = spec.extra.get("safety", {}) or {}
        if float(safety.get("max_chunk_step", 0.0) or 0.0) > 0:
            bridge["max_chunk_step"] = float(safety["max_chunk_step"])
    if dry_run:
        bridge["dry_run"] = True
    nodes.append(NodeSpec("controller_bridge", "controller_bridge", bridge))
    if namespace:
        nodes = [NodeSpec(n.executable, n.name, n.parameters, n.remappings, namespace.strip("/")) for n in nodes]
    return nodes
