"""Embodiment specs: what a robot is, as data (config/robots/<name>.yaml).

Positions are SI / radians (REP 103) everywhere outside a driver. A policy trained on a LeRobot
dataset may use other units (SO-100 degrees, a 0..100 gripper); each joint carries the affine
map ``model = policy_scale * si + policy_offset`` between the two.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np


class SpecError(ValueError):
    """A robot description that cannot be used; the message names the file and field."""


@dataclass(frozen=True)
class JointSpec:
    name: str
    lower: float
    upper: float
    max_velocity: float
    max_acceleration: float
    home: float = 0.0
    policy_scale: float = 1.0
    policy_offset: float = 0.0
    max_step: float = 0.0  # largest change between two consecutive commands; 0: derived (see RobotSpec)


@dataclass(frozen=True)
class CameraSpec:
    name: str
    policy_key: str
    width: int = 640
    height: int = 480
    rate: float = 30.0
    encoding: str = "rgb8"
    device: str = ""

    @property
    def topic(self) -> str:
        return f"camera/{self.name}/image_raw"


@dataclass(frozen=True)
class RobotSpec:
    name: str
    description: str
    joints: tuple[JointSpec, ...]
    cameras: tuple[CameraSpec, ...]
    control_rate: float
    state_rate: float
    policy_fps: float
    controller: str = "arm_controller"
    real_driver: str = "ros2_control"
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def joint_names(self) -> list[str]:
        return [j.name for j in self.joints]

    @property
    def dof(self) -> int:
        return len(self.joints)

    def _arr(self, attr: str) -> np.ndarray:
        return np.array([getattr(j, attr) for j in self.joints], dtype=np.float64)

    @property
    def lower(self) -> np.ndarray:
        return self._arr("lower")

    @property
    def upper(self) -> np.ndarray:
        return self._arr("upper")

    @property
    def max_velocity(self) -> np.ndarray:
        return self._arr("max_velocity")

    @property
    def max_acceleration(self) -> np.ndarray:
        return self._arr("max_acceleration")

    @property
    def home(self) -> np.ndarray:
        return self._arr("home")

    @property
    def max_step(self) -> np.ndarray:
        """Step cap between consecutive commands (rad or m): ``limits.max_step`` where given, else
        twice what the velocity limit allows in one control period."""
        given = self._arr("max_step")
        return np.where(given > 0, given, 2.0 * self.max_velocity / self.control_rate)

    @property
    def family(self) -> str:
        """The driver module that serves this robot (``family`` in the YAML, else its name)."""
        return str(self.extra.get("family", self.name))

    def to_policy(self, q: np.ndarray) -> np.ndarray:
        """SI positions (..., dof) -> the policy's units."""
        return np.asarray(q) * self._arr("policy_scale") + self._arr("policy_offset")

    def from_policy(self, a: np.ndarray) -> np.ndarray:
        """The policy's units (..., dof) -> SI positions."""
        return (np.asarray(a) - self._arr("policy_offset")) / self._arr("policy_scale")

    def camera(self, name: str) -> CameraSpec:
        for cam in self.cameras:
            if cam.name == name:
                return cam
        raise SpecError(f"robot {self.name} has no camera {name!r}; cameras: {[c.name for c in self.cameras]}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<dict>") -> "RobotSpec":
        def need(mapping: Mapping[str, Any], key: str, where: str) -> Any:
            if key not in mapping:
                raise SpecError(f"{source}: {where} is missing '{key}'")
            return mapping[key]

        try:
            joints = []
            for i, j in enumerate(need(data, "joints", "robot")):
                where = f"joints[{i}]"
                limits = j.get("limits", {})
                js = JointSpec(
                    name=str(need(j, "name", where)),
                    lower=float(need(limits, "lower", f"{where}.limits")),
                    upper=float(need(limits, "upper", f"{where}.limits")),
                    max_velocity=float(need(limits, "velocity", f"{where}.limits")),
                    max_acceleration=float(need(limits, "acceleration", f"{where}.limits")),
                    home=float(j.get("home", 0.0)),
                    policy_scale=float(j.get("policy_scale", 1.0)),
                    policy_offset=float(j.get("policy_offset", 0.0)),
                    max_step=float(limits.get("max_step", 0.0)),
                )
                if not (js.lower < js.upper):
                    raise SpecError(f"{source}: {where} ({js.name}) lower {js.lower} must be < upper {js.upper}")
                if not (js.lower <= js.home <= js.upper):
                    raise SpecError(f"{source}: {where} ({js.name}) home {js.home} is outside its limits")
                if js.max_velocity <= 0 or js.max_acceleration <= 0 or js.policy_scale == 0:
                    raise SpecError(f"{source}: {where} ({js.name}) velocity, acceleration and policy_scale must be > 0")
                if js.max_step < 0:
                    raise SpecError(f"{source}: {where} ({js.name}) max_step must be >= 0 (0: derived from velocity)")
                joints.append(js)
            if "arm_order" in data:
                joints = _arm_order(joints, data["arm_order"], source)
            names = [j.name for j in joints]
            if len(set(names)) != len(names) or not names:
                raise SpecError(f"{source}: joint names must be unique and non-empty: {names}")
            cameras = tuple(
                CameraSpec(
                    name=str(need(c, "name", f"cameras[{i}]")),
                    policy_key=str(need(c, "policy_key", f"cameras[{i}]")),
                    width=int(c.get("width", 640)),
                    height=int(c.get("height", 480)),
                    rate=float(c.get("rate", 30.0)),
                    encoding=str(c.get("encoding", "rgb8")),
                    device=str(c.get("device", "")),
                )
                for i, c in enumerate(data.get("cameras", []))
            )
            rates = {k: float(need(data, k, "robot")) for k in ("control_rate", "state_rate", "policy_fps")}
            if min(rates.values()) <= 0:
                raise SpecError(f"{source}: rates must be > 0: {rates}")
            known = {"name", "description", "joints", "cameras", "controller", "real_driver", *rates}
            return cls(
                name=str(need(data, "name", "robot")),
                description=str(data.get("description", "")),
                joints=tuple(joints),
                cameras=cameras,
                controller=str(data.get("controller", "arm_controller")),
                real_driver=str(data.get("real_driver", "ros2_control")),
                extra={k: v for k, v in data.items() if k not in known},
                **rates,
            )
        except (TypeError, ValueError) as exc:
            if isinstance(exc, SpecError):
                raise
            raise SpecError(f"{source}: {exc}") from None


def _arm_order(joints: list[JointSpec], order: Any, source: str) -> list[JointSpec]:
    """Joints grouped by their ``<side>_`` prefix in the order ``order`` lists the sides (a bimanual
    robot whose dataset puts the right arm first: ``arm_order: [right, left]``); within a side the
    YAML order is kept."""
    if not isinstance(order, (list, tuple)) or not order or len(set(order)) != len(order):
        raise SpecError(f"{source}: arm_order must be a list of distinct side prefixes, e.g. [left, right]")
    groups: dict[str, list[JointSpec]] = {str(side): [] for side in order}
    for j in joints:
        side = j.name.split("_", 1)[0]
        if side not in groups:
            raise SpecError(f"{source}: joint {j.name!r} does not start with one of the arm_order sides "
                            f"{list(groups)} followed by '_'")
        groups[side].append(j)
    return [j for side in groups for j in groups[side]]


def reorder(values: Sequence[float], names: Sequence[str], wanted: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """``values`` given for ``names`` in the order of ``wanted``: (array, missing names).
    Missing entries are NaN; names beyond ``values`` count as missing; a name given twice takes
    its last value."""
    index = {n: i for i, n in enumerate(names)}
    out = np.full(len(wanted), np.nan)
    missing = []
    for k, n in enumerate(wanted):
        i = index.get(n)
        if i is None or i >= len(values):
            missing.append(n)
        else:
            out[k] = values[i]
    return out, missing
