"""launch/*.launch.py exercised without ROS 2.

Minimal stand-ins for the parts of ``launch`` / ``launch_ros`` the launch files use are put in
``sys.modules`` for the duration of each test only (they live in this file and are never
installed). A small runner then does what ``ros2 launch`` does with them: command-line arguments
become launch configurations, DeclareLaunchArgument fills defaults and checks choices,
IncludeLaunchDescription loads the file like launch's Python loader and sets its arguments,
OpaqueFunction runs. The Node actions that come out must be exactly node_plan()'s.
"""
from __future__ import annotations

import re
import sys
import types
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_DIR = ROOT / "launch"
VARIANTS = ("full", "frozen", "distilled")

launch_plan = pytest.importorskip("vla_ros.launch_plan")


# -- stand-ins ------------------------------------------------------------------------------------


class LaunchError(Exception):
    pass


class Context:
    def __init__(self, configurations: dict[str, str]) -> None:
        self.launch_configurations = dict(configurations)


class LaunchDescription:
    def __init__(self, initial_entities=None) -> None:
        self.entities = list(initial_entities or [])


class DeclareLaunchArgument:
    def __init__(self, name, *, default_value=None, description=None, choices=None, **kwargs):
        assert not kwargs, kwargs
        assert isinstance(name, str)
        assert default_value is None or isinstance(default_value, str)
        assert description is None or isinstance(description, str)
        if choices is not None:
            assert choices and all(isinstance(c, str) for c in choices)
            # launch refuses a default outside the choices when the action is built
            if default_value is not None and default_value not in choices:
                raise LaunchError(f"default {default_value!r} of {name} not in {choices}")
        self.name, self.default_value = name, default_value
        self.description, self.choices = description, choices

    def execute(self, context: Context):
        value = context.launch_configurations.get(self.name)
        if value is None:
            if self.default_value is None:
                raise LaunchError(f"required launch argument {self.name} not given")
            context.launch_configurations[self.name] = value = self.default_value
        if self.choices is not None and value not in self.choices:
            raise LaunchError(f"{self.name}:={value} not one of {self.choices}")
        return []


class LaunchConfiguration:
    def __init__(self, variable_name, *, default=None) -> None:
        self.variable_name, self.default = variable_name, default

    def perform(self, context: Context) -> str:
        if self.variable_name in context.launch_configurations:
            return context.launch_configurations[self.variable_name]
        if self.default is None:
            raise LaunchError(f"launch configuration {self.variable_name} not set")
        return self.default


class OpaqueFunction:
    def __init__(self, *, function, args=None, kwargs=None) -> None:
        self.function, self.args, self.kwargs = function, list(args or []), dict(kwargs or {})

    def execute(self, context: Context):
        return self.function(context, *self.args, **self.kwargs) or []


class PythonLaunchDescriptionSource:
    def __init__(self, launch_file_path) -> None:
        assert isinstance(launch_file_path, str)
        self.location = launch_file_path


class IncludeLaunchDescription:
    def __init__(self, launch_description_source, *, launch_arguments=None) -> None:
        self.source = launch_description_source
        self.launch_arguments = list(launch_arguments or [])

    def execute(self, context: Context):
        description = load_launch_file(Path(self.source.location)).generate_launch_description()
        for name, value in self.launch_arguments:
            context.launch_configurations[name] = value
        return [description]


class Node:
    """launch_ros.actions.Node: records what it was given."""

    def __init__(self, *, executable, package=None, name=None, namespace=None, parameters=None,
                 remappings=None, **kwargs) -> None:
        self.executable, self.package, self.name, self.namespace = executable, package, name, namespace
        self.parameters, self.remappings, self.kwargs = parameters, remappings, kwargs


def _module(name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    return mod


@pytest.fixture(autouse=True)
def stand_in_launch(monkeypatch):
    """Stand-in launch / launch_ros modules, for this test only."""
    mods = {
        "launch": _module("launch", LaunchDescription=LaunchDescription),
        "launch.actions": _module(
            "launch.actions", DeclareLaunchArgument=DeclareLaunchArgument,
            OpaqueFunction=OpaqueFunction, IncludeLaunchDescription=IncludeLaunchDescription),
        "launch.substitutions": _module("launch.substitutions", LaunchConfiguration=LaunchConfiguration),
        "launch.launch_description_sources": _module(
            "launch.launch_description_sources",
            PythonLaunchDescriptionSource=PythonLaunchDescriptionSource),
        "launch_ros": _module("launch_ros"),
        "launch_ros.actions": _module("launch_ros.actions", Node=Node),
    }
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # no launch/__pycache__ in the tree
    yield
    # monkeypatch restores sys.modules entries; nothing else keeps the stand-ins


def load_launch_file(path: Path) -> types.ModuleType:
    """As launch's load_python_launch_file_as_module does."""
    loader = SourceFileLoader("python_launch_file", str(path))
    mod = module_from_spec(spec_from_loader(loader.name, loader))
    loader.exec_module(mod)
    return mod


def run_launch(path: Path, **arguments: str) -> list[Node]:
    """Visit the launch description like `ros2 launch <file> name:=value ...`; the Nodes."""
    context = Context(arguments)
    nodes: list[Node] = []

    def visit(entity):
        if isinstance(entity, LaunchDescription):
            for child in entity.entities:
                visit(child)
        elif isinstance(entity, Node):
            nodes.append(entity)
        else:
            for child in entity.execute(context):
                visit(child)

    visit(load_launch_file(path).generate_launch_description())
    return nodes


def declared_arguments(path: Path) -> list[DeclareLaunchArgument]:
    description = load_launch_file(path).generate_launch_description()
    return [e for e in description.entities if isinstance(e, DeclareLaunchArgument)]


# -- what launch_ros will accept ----------------------------------------------------------------


def launch_ros_parameters(parameters: dict) -> dict:
    """node_plan parameters as the launch file must pass them: lists as lists, empty lists left
    out (launch_ros cannot type them)."""
    return {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in parameters.items()
            if not (isinstance(v, (list, tuple)) and not v)}


def assert_launch_ros_can_type(name: str, value) -> None:
    """launch_ros' evaluate_parameter_dict: scalars, or non-empty lists of one scalar type
    (ints and floats mix into floats)."""
    scalar = (bool, int, float, str)
    if isinstance(value, list):
        assert value, f"{name}: empty list"
        kinds = {bool if isinstance(v, bool) else type(v) for v in value}
        assert kinds <= set(scalar), f"{name}: {value!r}"
        assert len(kinds) == 1 or kinds == {int, float}, f"{name}: mixed types {value!r}"
    else:
        assert isinstance(value, scalar), f"{name}: {value!r}"


def expected_nodes(**arguments: str):
    return launch_plan.node_plan(**arguments)


def assert_nodes_match(nodes: list[Node], specs) -> None:
    assert [n.executable for n in nodes] == [s.executable for s in specs]
    for node, spec in zip(nodes, specs):
        assert node.package == "vla_ros"
        assert node.name == spec.name
        assert node.namespace == (getattr(spec, "namespace", "") or None)
        assert node.parameters == [launch_ros_parameters(spec.parameters)]
        for key, value in node.parameters[0].items():
            assert_launch_ros_can_type(f"{spec.name}.{key}", value)
        assert [tuple(r) for r in node.remappings] == [tuple(r) for r in spec.remappings]
        assert node.kwargs["output"] == "screen"
        assert node.kwargs["emulate_tty"] is True
        assert node.kwargs["additional_env"] == {"VLA_ROS_TRANSPORT": "rclpy"}


# -- tests ----------------------------------------------------------------------------------------


def test_vla_launch_declares_the_launch_arguments():
    declared = declared_arguments(LAUNCH_DIR / "vla.launch.py")
    assert [(d.name, d.default_value, d.description, d.choices) for d in declared] == [
        (a.name, a.default, a.description, list(a.choices) if a.choices else None)
        for a in launch_plan.LAUNCH_ARGUMENTS
    ]


@pytest.mark.parametrize("arguments", [
    {},
    {"robot": "so100", "model": "tiny", "hardware": "mock"},
    {"robot": "aloha", "model": "full", "hardware": "mock"},
    {"robot": "rby1", "model": "frozen", "hardware": "mock", "device": "cpu"},
    {"robot": "so100", "model": "frozen", "hardware": "real", "checkpoint": "/ckpt/frozen"},
    {"robot": "aloha", "model": "distilled", "hardware": "mock", "namespace": "left_cell"},
], ids=lambda a: ",".join(f"{k}={v}" for k, v in a.items()) or "defaults")
def test_vla_launch_starts_the_planned_nodes(arguments):
    defaults = {a.name: a.default for a in launch_plan.LAUNCH_ARGUMENTS}
    assert_nodes_match(run_launch(LAUNCH_DIR / "vla.launch.py", **arguments),
                       expected_nodes(**{**defaults, **arguments}))


@pytest.mark.parametrize("robot", ["aloha", "rby1"])
def test_vla_launch_reports_what_node_plan_refuses(robot):
    """hardware:=real on a robot without a driver: the same error as `vla-ros launch` gives."""
    try:
        launch_plan.node_plan(robot=robot, hardware="real")
    except ValueError as exc:
        with pytest.raises(ValueError, match=re.escape(str(exc))):
            run_launch(LAUNCH_DIR / "vla.launch.py", robot=robot, hardware="real")
    else:
        run_launch(LAUNCH_DIR / "vla.launch.py", robot=robot, hardware="real")


def test_vla_launch_rejects_a_name_outside_the_choices():
    with pytest.raises(LaunchError, match="robot:=ur5"):
        run_launch(LAUNCH_DIR / "vla.launch.py", robot="ur5")


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_launch_files_set_the_model_and_pass_the_rest_through(variant):
    path = LAUNCH_DIR / f"{variant}.launch.py"
    assert path.exists()
    passed = {"robot": "aloha", "hardware": "mock", "checkpoint": "/ckpt/x", "device": "cpu"}
    nodes = run_launch(path, **passed)
    defaults = {a.name: a.default for a in launch_plan.LAUNCH_ARGUMENTS}
    assert_nodes_match(nodes, expected_nodes(**{**defaults, **passed, "model": variant}))
    policy = [n for n in nodes if n.executable == "policy_node"]
    assert len(policy) == 1 and policy[0].parameters[0]["model"] == variant


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_launch_files_with_defaults(variant):
    nodes = run_launch(LAUNCH_DIR / f"{variant}.launch.py")
    defaults = {a.name: a.default for a in launch_plan.LAUNCH_ARGUMENTS}
    assert_nodes_match(nodes, expected_nodes(**{**defaults, "model": variant}))


def test_every_variant_has_a_model_config():
    models = next(a for a in launch_plan.LAUNCH_ARGUMENTS if a.name == "model").choices
    assert set(VARIANTS) <= set(models)
