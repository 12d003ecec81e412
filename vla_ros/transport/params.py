"""Parameters declared once, typed, validated, with defaults and documentation.

The idea of PickNik's generate_parameter_library, in plain Python: a node lists :class:`Param`
entries; every backend supplies raw values (rclpy from its parameter server, dds/inproc from
ROS-style YAML files ``node_name: ros__parameters: {...}`` plus ``name:=value`` overrides) and
:func:`validate` turns them into a typed namespace or raises :class:`ParameterError` naming the
parameter, the value and what is allowed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Mapping, Sequence

import yaml

_TYPES = ("bool", "int", "float", "str", "str[]", "float[]", "int[]")


class ParameterError(ValueError):
    """An invalid parameter value; the message names the node, the parameter and the fix."""


@dataclass(frozen=True)
class Param:
    """One parameter: ``type`` is one of bool, int, float, str, str[], float[], int[]."""

    name: str
    type: str
    default: Any
    description: str
    choices: Sequence[Any] | None = None
    min: float | None = None
    max: float | None = None
    validate: Callable[[Any], str | None] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise TypeError(f"parameter {self.name}: unknown type {self.type!r}")


def _coerce(p: Param, value: Any) -> Any:
    t = p.type
    if t == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise TypeError("expected true or false")
    if t == "int":
        if isinstance(value, bool):
            raise TypeError("expected an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise TypeError("expected an integer")
    if t == "float":
        if isinstance(value, bool):
            raise TypeError("expected a number")
        out = float(value)
        if not math.isfinite(out):
            raise TypeError("expected a finite number")
        return out
    if t == "str":
        if isinstance(value, (list, tuple, dict)):
            raise TypeError("expected a string")
        return str(value)
    # arrays: accept a YAML list or a comma separated / YAML-list string from the command line
    if isinstance(value, str):
        text = value.strip()
        value = yaml.safe_load(text) if text.startswith("[") else [v for v in text.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"expected a list ({t})")
    elem = Param(p.name, t[:-2], None, "")
    return [_coerce(elem, v.strip() if isinstance(v, str) else v) for v in value]


def validate(node_name: str, specs: Iterable[Param], raw: Mapping[str, Any]) -> SimpleNamespace:
    """Typed values for ``specs`` from ``raw`` (missing names take their default)."""
    specs = list(specs)
    known = {p.name for p in specs}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ParameterError(
            f"{node_name}: unknown parameter(s) {', '.join(unknown)}; "
            f"valid: {', '.join(sorted(known))}"
        )
    out = {}
    for p in specs:
        value = raw.get(p.name, p.default)
        try:
            value = _coerce(p, value)
        except (TypeError, ValueError) as exc:
            raise ParameterError(
                f"{node_name}: parameter '{p.name}' = {value!r} is invalid: {exc} ({p.description})"
            ) from None
        problem = None
        if p.choices is not None and value not in p.choices:
            problem = f"must be one of {', '.join(map(str, p.choices))}"
        elif p.min is not None and value < p.min:
            problem = f"must be >= {p.min}"
        elif p.max is not None and value > p.max:
            problem = f"must be <= {p.max}"
        elif p.validate is not None:
            problem = p.validate(value)
        if problem:
            raise ParameterError(f"{node_name}: parameter '{p.name}' = {value!r} {problem} ({p.description})")
        out[p.name] = value
    return SimpleNamespace(**out)


def load_yaml_params(path: str | Path, node_name: str) -> dict[str, Any]:
    """Values for ``node_name`` from a ROS 2 parameter file (``/**`` entries apply to all)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ParameterError(f"{node_name}: parameter file '{path}' not found") from None
    except yaml.YAMLError as exc:
        raise ParameterError(f"{node_name}: parameter file '{path}' is not valid YAML: {exc}") from None
    out: dict[str, Any] = {}
    bare = node_name.rsplit("/", 1)[-1]
    for key in ("/**", "**", bare, f"/{bare}", node_name):
        section = data.get(key)
        if isinstance(section, dict):
            params = section.get("ros__parameters")
            if not isinstance(params, dict):
                raise ParameterError(f"{node_name}: '{path}' section '{key}' has no ros__parameters mapping")
            out.update(params)
    return out


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``name:=value`` strings (``--ros-args -p`` style) to a dict; values parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        if ":=" not in item:
            raise ParameterError(f"parameter override {item!r} must look like name:=value")
        name, text = item.split(":=", 1)
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        out[name.strip()] = text if value is None else value
    return out


def describe(specs: Iterable[Param]) -> str:
    """A table of the parameters for ``--help``."""
    lines = []
    for p in specs:
        extra = f" one of {list(p.choices)}" if p.choices else ""
        lines.append(f"  {p.name} ({p.type}, default {p.default!r}){extra}\n      {p.description}")
    return "\n".join(lines)
