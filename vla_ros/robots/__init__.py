"""Embodiments: robot specs from config/robots/*.yaml and one driver module per robot."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from ..core.embodiment import RobotSpec, SpecError
from ..paths import config_dir


def available_robots() -> list[str]:
    return sorted(p.stem for p in config_dir("robots").glob("*.yaml"))


@lru_cache(maxsize=None)
def load_robot(name_or_path: str) -> RobotSpec:
    """The spec of a robot by name (``so100``) or by the path of a YAML file."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = config_dir("robots") / f"{name_or_path}.yaml"
        if not path.is_file():
            raise SpecError(
                f"unknown robot {name_or_path!r}; valid robots: {', '.join(available_robots())} "
                f"(or the path of a robot YAML file)"
            )
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"cannot read robot description {path}: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping at the top level")
    return RobotSpec.from_dict(data, source=str(path))


__all__ = ["RobotSpec", "SpecError", "available_robots", "load_robot"]
