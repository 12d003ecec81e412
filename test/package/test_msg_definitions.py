"""msg/*.msg parse with rosbags (what the dds backend and bag tools use) and with ROS 2's own
rosidl adapter and IDL parser (what `colcon build` runs), and both agree on the fields.

The rosidl check needs Debian's python3-rosidl (``apt-get install python3-rosidl``, see
scripts/debian-ros-tools.sh) or a sourced ROS 2; it is skipped, saying so, where neither is present.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "vla_ros"
MSG_FILES = sorted((ROOT / "msg").glob("*.msg"))

#: run by a Python that has rosidl_adapter / rosidl_parser; prints the fields it parsed
ROSIDL_SCRIPT = r"""
import json, pathlib, sys, tempfile
from rosidl_adapter.parser import parse_message_file
from rosidl_adapter.msg import convert_msg_to_idl
from rosidl_parser.definition import IdlLocator, Message
from rosidl_parser.parser import parse_idl_file

pkg_dir = pathlib.Path(sys.argv[1]).resolve()
out = {}
with tempfile.TemporaryDirectory() as tmp:
    for name in sys.argv[2:]:
        rel = pathlib.Path("msg") / name
        spec = parse_message_file("vla_ros", str(pkg_dir / rel))
        idl = convert_msg_to_idl(pkg_dir, "vla_ros", rel, pathlib.Path(tmp))  # prints progress
        content = parse_idl_file(IdlLocator(pathlib.Path(tmp), idl.name)).content
        (msg,) = content.get_elements_of_type(Message)
        out[rel.stem] = {
            "msg_fields": [f.name for f in spec.fields],
            "msg_constants": {c.name: c.value for c in spec.constants},
            "idl_type": "::".join(msg.structure.namespaced_type.namespaced_name()),
            "idl_fields": [m.name for m in msg.structure.members],
            "idl_constants": {c.name: c.value for c in msg.constants},
        }
print("ROSIDL_RESULT " + json.dumps(out))
"""


def _rosbags_fields(path: Path) -> tuple[list[str], dict[str, object]]:
    typesys = pytest.importorskip("rosbags.typesys")
    name = f"{PACKAGE}/msg/{path.stem}"
    types = typesys.get_types_from_msg(path.read_text(), name)
    assert name in types
    consts, fields = types[name][0], types[name][1]
    return [f[0] for f in fields], {c[0]: c[2] for c in consts}


def _rosidl_python() -> str | None:
    """A Python that can import the rosidl adapter and parser, or None."""
    candidates = [sys.executable, "/usr/bin/python3", shutil.which("python3")]
    for exe in dict.fromkeys(c for c in candidates if c):
        probe = subprocess.run(
            [exe, "-c", "import rosidl_adapter.parser, rosidl_adapter.msg, rosidl_parser.parser"],
            capture_output=True, check=False,
        )
        if probe.returncode == 0:
            return exe
    return None


def test_there_are_messages():
    assert [p.name for p in MSG_FILES] == ["ActionChunk.msg", "PolicyStatus.msg"]


@pytest.mark.parametrize("path", MSG_FILES, ids=lambda p: p.stem)
def test_msg_parses_with_rosbags_and_registers_in_every_typestore(path):
    typesys = pytest.importorskip("rosbags.typesys")
    fields, _ = _rosbags_fields(path)
    assert fields
    name = f"{PACKAGE}/msg/{path.stem}"
    for store_name in ("ROS2_HUMBLE", "ROS2_JAZZY"):
        store_id = getattr(typesys.Stores, store_name, None)
        if store_id is None:
            continue
        store = typesys.get_typestore(store_id)
        store.register(typesys.get_types_from_msg(path.read_text(), name))
        assert name in store.types, store_name


def test_action_chunk_fields():
    fields, _ = _rosbags_fields(ROOT / "msg" / "ActionChunk.msg")
    assert fields == ["header", "chunk_id", "joint_names", "horizon", "action_dim", "step_period",
                      "actions", "model_variant", "inference_latency", "instruction_id"]


def test_policy_status_states():
    _, consts = _rosbags_fields(ROOT / "msg" / "PolicyStatus.msg")
    assert consts == {"STATE_LOADING": 0, "STATE_IDLE": 1, "STATE_WAITING": 2, "STATE_RUNNING": 3,
                      "STATE_ERROR": 4}


def test_msgs_parse_with_rosidl_and_agree_with_rosbags():
    exe = _rosidl_python()
    if exe is None:
        pytest.skip("rosidl_adapter/rosidl_parser not installed (Debian: apt-get install "
                    "python3-rosidl, or source a ROS 2 setup)")
    out = subprocess.run(
        [exe, "-c", ROSIDL_SCRIPT, str(ROOT), *[p.name for p in MSG_FILES]],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert out.returncode == 0, out.stderr
    (line,) = [ln for ln in out.stdout.splitlines() if ln.startswith("ROSIDL_RESULT ")]
    parsed = json.loads(line.split(" ", 1)[1])
    assert sorted(parsed) == sorted(p.stem for p in MSG_FILES)
    for path in MSG_FILES:
        result = parsed[path.stem]
        fields, consts = _rosbags_fields(path)
        assert result["idl_type"] == f"{PACKAGE}::msg::{path.stem}"
        assert result["msg_fields"] == fields
        assert result["idl_fields"] == fields
        assert result["msg_constants"] == consts
        assert result["idl_constants"] == consts
