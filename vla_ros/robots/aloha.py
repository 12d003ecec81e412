"""ALOHA (Trossen / Interbotix ViperX 300 S followers) through the Interbotix xs_sdk's ROS 2 topics.

Per follower arm (namespace ``follower_left`` / ``follower_right``, from the YAML ``arms``):

- ``<arm>/commands/joint_group``: interbotix_xs_msgs/JointGroupCommand, ``name: arm``, the six arm
  joints in the group's order (waist, shoulder, elbow, forearm_roll, wrist_angle, wrist_rotate);
- ``<arm>/commands/joint_single``: interbotix_xs_msgs/JointSingleCommand, ``name: gripper``;
- ``<arm>/joint_states``: sensor_msgs/JointState with the xs_sdk's joint names.

Our joints are ``<side>_<joint>`` (``left_waist`` ... ``right_gripper``); the side prefix picks the
arm, so the action order (``arm_order``) and the wiring are independent. Positions are radians on
both sides (the xs_sdk's 'position' mode), the gripper included (the follower's gripper joint,
-0.6213 closed .. 1.4910 open); the policy's 0..1 gripper normalization is the YAML's
``policy_scale``/``policy_offset``, applied by the policy node.

``driver: interbotix``: the bridge publishes the commands; the state publisher merges the two
``<arm>/joint_states`` into ``joint_states`` with our names. ``driver: mock``: the state publisher
listens to the same command topics, moves a mock arm and publishes both the per-arm joint states
(as the xs_sdk does) and the merged ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from ..core.embodiment import RobotSpec, SpecError, reorder
from .base import CommandOutput, OnCommand, section

DRIVERS = ("mock", "interbotix")
STATE_PUBLISHER_DRIVERS = DRIVERS
GROUP_TYPE = "interbotix_xs_msgs/msg/JointGroupCommand"
SINGLE_TYPE = "interbotix_xs_msgs/msg/JointSingleCommand"
ARM_JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")


@dataclass(frozen=True)
class ArmMap:
    """One follower arm: its namespace, our joint indices of its arm group and of its gripper."""

    side: str
    namespace: str
    group: str
    arm_joints: tuple[str, ...]   # the xs_sdk's names, group order
    arm_indices: tuple[int, ...]  # ours, same order
    gripper: str
    gripper_index: int

    @property
    def group_topic(self) -> str:
        return f"{self.namespace}/commands/joint_group"

    @property
    def single_topic(self) -> str:
        return f"{self.namespace}/commands/joint_single"

    @property
    def states_topic(self) -> str:
        return f"{self.namespace}/joint_states"

    def theirs_to_ours(self) -> dict[str, int]:
        out = dict(zip(self.arm_joints, self.arm_indices))
        out[self.gripper] = self.gripper_index
        return out


def arm_maps(spec: RobotSpec) -> list[ArmMap]:
    """The follower arms of an ALOHA spec, from its ``arms`` and ``interbotix`` YAML sections."""
    arms = spec.extra.get("arms", {"left": "follower_left", "right": "follower_right"})
    if isinstance(arms, list):  # [follower_left, follower_right]: sides from the names
        arms = {ns.rsplit("_", 1)[-1]: ns for ns in arms}
    if not isinstance(arms, Mapping) or not arms:
        raise SpecError(f"robot {spec.name}: 'arms' must map a joint prefix to an interbotix namespace, "
                        f"e.g. {{left: follower_left, right: follower_right}}")
    ix = section(spec, "interbotix")
    group = str(ix.get("arm_group", "arm"))
    arm_joints = tuple(ix.get("arm_joints", ARM_JOINTS))
    gripper = str(ix.get("gripper_joint", "gripper"))
    index = {n: i for i, n in enumerate(spec.joint_names)}
    out, used = [], set()
    for side, namespace in arms.items():
        wanted = [f"{side}_{j}" for j in arm_joints] + [f"{side}_{gripper}"]
        missing = [n for n in wanted if n not in index]
        if missing:
            raise SpecError(f"robot {spec.name}: arm '{side}' ({namespace}) needs joints {missing}")
        used.update(wanted)
        out.append(ArmMap(str(side), str(namespace).strip("/"), group, arm_joints,
                          tuple(index[f"{side}_{j}"] for j in arm_joints), gripper, index[f"{side}_{gripper}"]))
    extra = [n for n in spec.joint_names if n not in used]
    if extra:
        raise SpecError(f"robot {spec.name}: joints {extra} belong to no arm in 'arms'")
    return out


class InterbotixOutput(CommandOutput):
    """Per arm, one JointGroupCommand (arm group) and one JointSingleCommand (gripper) per period."""

    def __init__(self, port, spec: RobotSpec) -> None:
        self.port = port
        self.arms = arm_maps(spec)
        self.group_pubs = [port.publisher(a.group_topic, GROUP_TYPE) for a in self.arms]
        self.single_pubs = [port.publisher(a.single_topic, SINGLE_TYPE) for a in self.arms]
        self.topics = tuple(port.resolve(t) for a in self.arms for t in (a.group_topic, a.single_topic))

    def send(self, positions: np.ndarray, period: float) -> None:
        positions = np.asarray(positions, dtype=np.float64)
        for arm, gpub, spub in zip(self.arms, self.group_pubs, self.single_pubs):
            gpub.publish(self.port.new(GROUP_TYPE, name=arm.group,
                                       cmd=positions[list(arm.arm_indices)].astype(np.float32)))
            spub.publish(self.port.new(SINGLE_TYPE, name=arm.gripper, cmd=float(positions[arm.gripper_index])))


def command_output(port, spec: RobotSpec, driver: str, controller: str = "") -> CommandOutput:
    return InterbotixOutput(port, spec)


def follow_commands(port, spec: RobotSpec, on_command: OnCommand, warn: Callable[[str, str], None]) -> None:
    """What the xs_sdk does with the two command topics, for the mock: our names and radians to
    ``on_command``. A group or joint name it does not know is ignored with a warning, as the
    xs_sdk does."""
    for arm in arm_maps(spec):
        ours = [spec.joint_names[i] for i in arm.arm_indices]

        def on_group(msg, arm=arm, ours=ours) -> None:
            cmd = np.asarray(msg.cmd, dtype=np.float64)
            if msg.name != arm.group or len(cmd) != len(ours) or not np.all(np.isfinite(cmd)):
                warn(f"group:{arm.namespace}:{msg.name}:{len(cmd)}",
                     f"{arm.group_topic}: ignoring group {msg.name!r} with {len(cmd)} value(s) "
                     f"(expected group {arm.group!r}, {len(ours)} finite values)")
                return
            on_command(ours, cmd)

        def on_single(msg, arm=arm) -> None:
            if msg.name != arm.gripper or not np.isfinite(msg.cmd):
                warn(f"single:{arm.namespace}:{msg.name}", f"{arm.single_topic}: ignoring joint {msg.name!r} "
                     f"(expected {arm.gripper!r} with a finite value)")
                return
            on_command([spec.joint_names[arm.gripper_index]], np.array([float(msg.cmd)]))

        port.subscribe(arm.group_topic, GROUP_TYPE, on_group)
        port.subscribe(arm.single_topic, SINGLE_TYPE, on_single)


class StateMerger:
    """Merges the followers' ``<arm>/joint_states`` into one vector in our joint order."""

    def __init__(self, spec: RobotSpec) -> None:
        self.spec = spec
        self.arms = arm_maps(spec)
        self.q = np.full(spec.dof, np.nan)
        self.v = np.full(spec.dof, np.nan)
        self.stamps: dict[str, float] = {}

    def update(self, arm: ArmMap, names: list[str], positions, velocities, stamp: float) -> list[str]:
        """Take one arm's joint states; returns the arm joints it lacks (then nothing is taken)."""
        mapping = arm.theirs_to_ours()
        theirs = list(mapping)
        q, missing = reorder(positions, names, theirs)
        if missing or not np.all(np.isfinite(q)):
            return missing or ["(non-finite)"]
        v, _ = reorder(velocities, names, theirs) if len(velocities) else (np.full(len(theirs), np.nan), [])
        idx = [mapping[n] for n in theirs]
        self.q[idx] = q
        self.v[idx] = v
        self.stamps[arm.namespace] = stamp
        return []

    def complete(self) -> bool:
        return len(self.stamps) == len(self.arms)

    def oldest(self) -> float:
        return min(self.stamps.values()) if self.stamps else -np.inf


def arm_state_message(port, arm: ArmMap, spec: RobotSpec, q: np.ndarray, v: np.ndarray, stamp: float) -> Any:
    """A JointState as the xs_sdk publishes it for one follower (its names, arm then gripper)."""
    idx = list(arm.arm_indices) + [arm.gripper_index]
    return port.new("sensor_msgs/msg/JointState", header=port.header(stamp),
                    name=list(arm.arm_joints) + [arm.gripper], position=q[idx], velocity=v[idx])
