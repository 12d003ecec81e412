"""The rclpy backend where rclpy is absent (this machine, CI): it imports, refuses clearly, and its
ROS-free parts (message field conversion, parameter defaults) behave. On a ROS 2 machine the
backend itself runs under `ros2 launch vla_ros vla.launch.py`.
"""
from __future__ import annotations

import array
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from vla_ros.transport.params import Param

ROOT = Path(__file__).resolve().parents[2]
MESSAGE = "rclpy is not available; source your ROS 2 setup or set VLA_ROS_TRANSPORT=dds"


@pytest.fixture
def no_rclpy(monkeypatch):
    """rclpy made unimportable (None in sys.modules), whether or not it is installed."""
    for name in ("rclpy", "rclpy.node", "rclpy.executors", "rclpy.qos"):
        monkeypatch.setitem(sys.modules, name, None)


def test_module_imports_without_rclpy():
    """In a fresh interpreter where importing rclpy fails."""
    code = (
        "import sys; sys.modules['rclpy'] = None\n"
        "import vla_ros.transport.rclpy_backend as b\n"
        "assert 'rclpy' not in {m.split('.')[0] for m in sys.modules if sys.modules[m] is not None}\n"
        "print(b.RclpyPort.backend)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "rclpy"


def test_constructing_a_port_without_rclpy_says_what_to_do(no_rclpy):
    from vla_ros.transport.rclpy_backend import RclpyPort, RclpyUnavailable

    with pytest.raises(RclpyUnavailable, match="^" + re.escape(MESSAGE)) as info:
        RclpyPort("policy_node")
    assert isinstance(info.value, ImportError)


def test_make_port_rclpy_without_rclpy(no_rclpy):
    from vla_ros.transport import make_port

    with pytest.raises(ImportError, match=re.escape(MESSAGE)):
        make_port("policy_node", "rclpy")


# -- message fields: what rosidl-generated setters accept ------------------------------------------


class _Generated:
    """A stand-in for a rosidl_generator_py class: typed fields, strict setters (as generated)."""

    _fields_and_field_types = {
        "stamp": "builtin_interfaces/Time",
        "names": "sequence<string>",
        "data": "sequence<uint8>",
        "actions": "sequence<float>",
        "position": "sequence<double>",
        "k": "double[9]",
        "period": "double",
        "count": "uint32",
        "flag": "boolean",
        "label": "string",
    }

    @classmethod
    def get_fields_and_field_types(cls):
        return dict(cls._fields_and_field_types)

    def __setattr__(self, name, value):
        ftype = self._fields_and_field_types[name]
        if ftype.startswith("sequence<") and ftype[9:-1] in ("uint8", "float", "double"):
            code = {"uint8": "B", "float": "f", "double": "d"}[ftype[9:-1]]
            assert isinstance(value, array.array) and value.typecode == code, (name, value)
        elif ftype == "double[9]":
            assert isinstance(value, np.ndarray) and value.dtype == np.float64 and value.size == 9
        elif ftype == "double":
            assert type(value) is float or isinstance(value, float) and not isinstance(value, np.floating)
        elif ftype == "uint32":
            assert type(value) is int
        elif ftype == "boolean":
            assert type(value) is bool
        elif ftype == "sequence<string>":
            assert isinstance(value, list) and all(isinstance(v, str) for v in value)
        object.__setattr__(self, name, value)


@pytest.fixture
def fake_msgs(monkeypatch):
    pkg = types.ModuleType("fake_msgs")
    msg = types.ModuleType("fake_msgs.msg")
    msg.Thing = _Generated
    monkeypatch.setitem(sys.modules, "fake_msgs", pkg)
    monkeypatch.setitem(sys.modules, "fake_msgs.msg", msg)
    from vla_ros.transport import rclpy_backend

    monkeypatch.setattr(rclpy_backend, "_class_cache", {})
    return rclpy_backend


def test_new_message_converts_numpy_and_python_values(fake_msgs):
    image = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    msg = fake_msgs.new_message(
        "fake_msgs/msg/Thing",
        names=("a", "b"),
        data=image,
        actions=np.ones((2, 3), dtype=np.float64),
        position=[0, 1.5],
        k=range(9),
        period=np.float32(0.02),
        count=np.int64(7),
        flag=np.bool_(True),
        label="x",
    )
    assert msg.names == ["a", "b"]
    assert msg.data.tobytes() == image.tobytes()
    assert msg.actions.typecode == "f" and list(msg.actions) == [1.0] * 6
    assert list(msg.position) == [0.0, 1.5]
    assert msg.k.tolist() == list(map(float, range(9)))
    assert msg.period == pytest.approx(0.02) and msg.count == 7 and msg.flag is True


def test_new_message_accepts_bytes_for_uint8_sequences(fake_msgs):
    msg = fake_msgs.new_message("fake_msgs/Thing", data=b"\x01\x02", actions=array.array("f", [1]))
    assert msg.data.tobytes() == b"\x01\x02" and list(msg.actions) == [1.0]


def test_new_message_rejects_unknown_fields(fake_msgs):
    with pytest.raises(TypeError, match="has no field"):
        fake_msgs.new_message("fake_msgs/msg/Thing", colour="red")


def test_unknown_message_types_explain_themselves(fake_msgs):
    with pytest.raises(KeyError, match="expected a ROS 2 name"):
        fake_msgs.message_class("Thing")
    with pytest.raises(KeyError, match="has no Nothing"):
        fake_msgs.message_class("fake_msgs/msg/Nothing")


def test_missing_vla_ros_messages_say_how_to_build_them(fake_msgs, monkeypatch):
    monkeypatch.setitem(sys.modules, "vla_ros.msg", None)
    with pytest.raises(KeyError, match="colcon build"):
        fake_msgs.message_class("vla_ros/msg/ActionChunk")


# -- parameter defaults as rclpy values -----------------------------------------------------------


@pytest.mark.parametrize("param, value", [
    (Param("rate", "float", 30, "Hz"), 30.0),
    (Param("width", "int", 640, "px"), 640),
    (Param("enabled", "bool", True, "on"), True),
    (Param("names", "str[]", ("a", "b"), "joints"), ["a", "b"]),
    (Param("limits", "float[]", [0, 1.5], "rad"), [0.0, 1.5]),
    (Param("empty", "str[]", [], "none"), []),
])
def test_parameter_defaults_have_one_rclpy_type(param, value):
    from vla_ros.transport.rclpy_backend import _ros_default

    out = _ros_default(param)
    assert out == value and type(out) is type(value)
    if isinstance(out, list) and out:
        assert len({type(v) for v in out}) == 1
