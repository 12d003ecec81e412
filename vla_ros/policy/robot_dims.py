"""What a policy must match on a robot: state/action dimension, camera keys, normalization stats.

Plain data (no torch). Values are in the policy's units (the units of the LeRobot dataset it was
trained on), not necessarily SI: the caller converts with the robot's ``policy_scale`` /
``policy_offset`` before building these.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from vla_ros.core.embodiment import RobotSpec

IMAGE_KEY_PREFIX = "observation.image"
"""LeRobot's image features are named ``observation.images.<camera>`` (or ``observation.image``)."""


def _floats(name: str, values: Sequence[float] | None, dim: int, positive: bool = False):
    if values is None:
        return None
    out = tuple(float(v) for v in values)
    if len(out) != dim:
        raise ValueError(f"{name}: expected {dim} values, got {len(out)}")
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{name}: values must be finite, got {out}")
    if positive and not all(v > 0 for v in out):
        raise ValueError(f"{name}: values must be > 0, got {out}")
    return out


@dataclass(frozen=True)
class RobotDims:
    """The robot as the policy sees it.

    Args:
        state_dim: Length of ``observation.state`` (joint positions, in policy units).
        action_dim: Length of one action row.
        image_keys: The policy image features the robot provides, e.g.
            ``("observation.images.top", "observation.images.wrist")``.
        image_shape: ``(C, H, W)`` declared for every camera (the policy resizes any size).
        state_mean, state_std: Per-joint normalization stats of the state; ``None`` = 0 / 1.
        action_mean, action_std: Per-joint stats of the actions; ``None`` = the state's stats
            when ``action_dim == state_dim``, else 0 / 1.
    """

    state_dim: int
    action_dim: int
    image_keys: tuple[str, ...] = ("observation.images.front",)
    image_shape: tuple[int, int, int] = (3, 480, 640)
    state_mean: tuple[float, ...] | None = None
    state_std: tuple[float, ...] | None = None
    action_mean: tuple[float, ...] | None = None
    action_std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if int(self.state_dim) < 1 or int(self.action_dim) < 1:
            raise ValueError(f"state_dim and action_dim must be >= 1, got {self.state_dim}, {self.action_dim}")
        set_(self, "state_dim", int(self.state_dim))
        set_(self, "action_dim", int(self.action_dim))
        keys = (self.image_keys,) if isinstance(self.image_keys, str) else tuple(self.image_keys)
        if not keys:
            raise ValueError("image_keys: a SmolVLA policy needs at least one camera")
        bad = [k for k in keys if not k.startswith(IMAGE_KEY_PREFIX)]
        if bad or len(set(keys)) != len(keys):
            raise ValueError(
                f"image_keys: expected distinct names like 'observation.images.<camera>', got {list(keys)}"
            )
        set_(self, "image_keys", keys)
        shape = tuple(int(v) for v in self.image_shape)
        if len(shape) != 3 or shape[0] != 3 or min(shape) < 1:
            raise ValueError(f"image_shape: expected (3, H, W), got {self.image_shape}")
        set_(self, "image_shape", shape)
        set_(self, "state_mean", _floats("state_mean", self.state_mean, self.state_dim))
        set_(self, "state_std", _floats("state_std", self.state_std, self.state_dim, positive=True))
        set_(self, "action_mean", _floats("action_mean", self.action_mean, self.action_dim))
        set_(self, "action_std", _floats("action_std", self.action_std, self.action_dim, positive=True))

    @classmethod
    def from_limits(
        cls,
        lower: Sequence[float],
        upper: Sequence[float],
        image_keys: Sequence[str],
        image_shape: tuple[int, int, int] = (3, 480, 640),
    ) -> "RobotDims":
        """Dims for a robot whose actions are joint targets, with stats from its joint limits.

        Mean = the middle of each range, std = a sixth of the range (so +-3 std spans it).
        A joint without finite limits gets mean 0, std 1.

        Args:
            lower, upper: Joint limits in policy units, one per joint (state_dim == action_dim).
            image_keys: Policy image features the robot provides.
            image_shape: ``(C, H, W)`` declared for every camera.
        """
        if len(lower) != len(upper):
            raise ValueError(f"lower has {len(lower)} values, upper {len(upper)}")
        mean, std = [], []
        for lo, hi in zip(lower, upper):
            lo, hi = float(lo), float(hi)
            if math.isfinite(lo) and math.isfinite(hi) and hi > lo:
                mean.append((lo + hi) / 2.0)
                std.append((hi - lo) / 6.0)
            else:
                mean.append(0.0)
                std.append(1.0)
        return cls(
            state_dim=len(mean),
            action_dim=len(mean),
            image_keys=tuple(image_keys),
            image_shape=image_shape,
            state_mean=tuple(mean),
            state_std=tuple(std),
        )

    @classmethod
    def from_robot_spec(cls, spec: "RobotSpec", image_keys: Sequence[str] | None = None) -> "RobotDims":
        """Dims of a robot described by ``config/robots/<name>.yaml``.

        Joint limits are converted to policy units with the spec's ``to_policy`` and give the
        stats (see :meth:`from_limits`); cameras give the image keys (their ``policy_key``) and
        the declared image shape (the first camera's size).

        Args:
            spec: A ``vla_ros.core.embodiment.RobotSpec``.
            image_keys: Policy image keys to use instead of the cameras' ``policy_key``.
        """
        import numpy as np

        a, b = spec.to_policy(spec.lower), spec.to_policy(spec.upper)
        keys = tuple(image_keys) if image_keys else tuple(cam.policy_key for cam in spec.cameras)
        shape = (3, spec.cameras[0].height, spec.cameras[0].width) if spec.cameras else (3, 480, 640)
        return cls.from_limits(np.minimum(a, b), np.maximum(a, b), keys, image_shape=shape)

    def stats(self) -> dict[str, dict[str, list[float]]]:
        """Normalization stats ``{"observation.state": {"mean", "std"}, "action": {...}}``."""
        s_mean = list(self.state_mean or [0.0] * self.state_dim)
        s_std = list(self.state_std or [1.0] * self.state_dim)
        if self.action_mean is not None:
            a_mean = list(self.action_mean)
        elif self.action_dim == self.state_dim:
            a_mean = list(s_mean)
        else:
            a_mean = [0.0] * self.action_dim
        if self.action_std is not None:
            a_std = list(self.action_std)
        elif self.action_dim == self.state_dim:
            a_std = list(s_std)
        else:
            a_std = [1.0] * self.action_dim
        return {
            "observation.state": {"mean": s_mean, "std": s_std},
            "action": {"mean": a_mean, "std": a_std},
        }
