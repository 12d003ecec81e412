"""Bag files: both storages, definitions for every type, truncated and corrupt bags."""
from __future__ import annotations

import shutil
import sqlite3

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from vla_ros.eval.bagio import BagError, BagReader, BagWriter
from vla_ros.eval.synthetic import joint_state_msg


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_written_bag_carries_every_definition(tmp_path, storage):
    """A reader that knows nothing of vla_ros (an empty typestore) decodes our ActionChunk."""
    from vla_ros.eval.synthetic import chunk_msg
    from vla_ros.robots import load_robot

    spec = load_robot("so100")
    actions = np.arange(12, dtype=np.float32).reshape(2, 6)
    with BagWriter(tmp_path / "b", storage=storage) as bag:
        bag.add_topic("/vla/action_chunk", "vla_ros/msg/ActionChunk")
        bag.write_msg("/vla/action_chunk", 5, chunk_msg(spec, 1.5, 7, actions))
    with AnyReader([tmp_path / "b"], default_typestore=get_typestore(Stores.EMPTY)) as reader:
        (conn,) = reader.connections
        assert conn.msgtype == "vla_ros/msg/ActionChunk"
        if storage == "mcap":  # sqlite3 stores definitions from Iron on: rosbags writes them in the db
            assert "float32[] actions" in conn.msgdef.data
        _, t, raw = next(reader.messages())
        msg = reader.deserialize(raw, conn.msgtype)
    assert t == 5 and msg.chunk_id == 7 and list(msg.joint_names) == spec.joint_names
    np.testing.assert_array_equal(np.asarray(msg.actions).reshape(2, 6), actions)


def test_writer_refuses_existing_path_and_unknown_type(tmp_path):
    (tmp_path / "b").mkdir()
    with pytest.raises(BagError, match="exists already"):
        BagWriter(tmp_path / "b")
    with BagWriter(tmp_path / "c") as bag:
        with pytest.raises(KeyError, match="unknown message type"):
            bag.add_topic("/x", "nope_msgs/msg/Nothing")


def test_interrupted_writer_leaves_a_valid_bag_and_a_failed_one_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with BagWriter(tmp_path / "kept") as bag:
            bag.add_topic("/joint_states", "sensor_msgs/msg/JointState")
            bag.write_msg("/joint_states", 1, joint_state_msg(["a"], np.array([0.5]), 1.0))
            raise KeyboardInterrupt
    with BagReader(tmp_path / "kept") as r:
        assert r.topics["/joint_states"].count == 1
    with pytest.raises(RuntimeError):
        with BagWriter(tmp_path / "dropped") as bag:
            bag.add_topic("/joint_states", "sensor_msgs/msg/JointState")
            raise RuntimeError("disk full")
    assert not (tmp_path / "dropped").exists()


def test_missing_and_non_bag_paths(tmp_path):
    with pytest.raises(BagError, match="does not exist"):
        BagReader(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="not a rosbag2"):
        BagReader(tmp_path / "empty")


def test_truncated_mcap_says_how_far_it_read(bags, tmp_path):
    src = bags["clean"]
    dst = tmp_path / "cut"
    shutil.copytree(src, dst)
    f = dst / f"{src.name}.mcap"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) * 2 // 3])  # the recorder died: no summary, no footer
    with pytest.raises(BagError) as err:
        BagReader(dst)
    text = str(err.value)
    assert "truncated or corrupt" in text and f"ends after {len(data) * 2 // 3} bytes" in text
    count = int(text.split("; read ")[1].split(" complete")[0])
    with BagReader(src) as whole:
        assert 0 < count < whole.message_count  # some messages were readable before the cut


def test_corrupt_sqlite_bag_names_the_file(bags, tmp_path):
    src = bags["sqlite3"]
    dst = tmp_path / "bad"
    shutil.copytree(src, dst)
    db = dst / f"{src.name}.db3"
    db.write_bytes(b"this is not sqlite" + db.read_bytes()[18:])
    with pytest.raises(BagError, match=r"bad\.db3|sqlite3\.db3|not a readable SQLite"):
        BagReader(dst)


def test_damage_inside_the_data_reports_messages_read(bags, tmp_path):
    src = bags["sqlite3"]
    dst = tmp_path / "broken"
    shutil.copytree(src, dst)
    db = dst / f"{src.name}.db3"
    con = sqlite3.connect(db)
    con.execute("UPDATE messages SET data = X'00010000' WHERE id = 200")  # a message cut short
    con.commit()
    con.close()
    with BagReader(dst) as r:
        with pytest.raises(BagError, match=r"truncated or corrupt: read \d+ of \d+ messages"):
            for _ in r.messages():
                pass
        assert r.read_count > 0


def test_bag_version_8_for_humble(tmp_path):
    """Version 8 metadata keeps each topic's QoS as a YAML string, the form Humble's reader parses."""
    import yaml

    with BagWriter(tmp_path / "h", version=8) as bag:
        bag.add_topic("/joint_states", "sensor_msgs/msg/JointState")
        bag.write_msg("/joint_states", 1, joint_state_msg(["a"], np.array([0.5]), 1.0))
    meta = yaml.safe_load((tmp_path / "h" / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == 8
    qos = meta["topics_with_message_count"][0]["topic_metadata"]["offered_qos_profiles"]
    assert isinstance(qos, str) and "reliability: 1" in qos
    with BagReader(tmp_path / "h") as r:
        assert r.topics["/joint_states"].count == 1
    with pytest.raises(BagError, match="bag version 5"):
        BagWriter(tmp_path / "old", version=5)
