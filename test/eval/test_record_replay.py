"""Replay onto the transport and record from it: in-process, and as two processes over DDS.

The DDS test plays a bag with ``vla-ros replay`` in one process and records it with
``vla-ros record`` in another (loopback, a domain of its own), stops the recorder with Ctrl-C
(SIGINT), and reads the new bag with two independent readers: the ``mcap`` package's own reader
and rosbags' AnyReader.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from vla_ros.eval.bagio import BagReader, BagWriter
from vla_ros.eval.live import PlayOptions, Recorder, Replayer, robot_topics
from vla_ros.transport import make_port
from vla_ros.transport.dds_env import loopback_env
from vla_ros.transport.types import stamp_to_sec


def _inproc_round_trip(src, dst, robot, options: PlayOptions):
    rec_port = make_port("recorder", "inproc")
    play_port = make_port("player", "inproc")
    topics = {t: ty for t, ty in robot_topics(robot).items()}
    with BagReader(src) as bag, BagWriter(dst) as out:
        recorder = Recorder(rec_port, out, topics)
        player = Replayer(play_port, bag, options)
        done = threading.Event()

        def play():
            player.run(progress=False)
            done.set()

        threading.Thread(target=play, daemon=True).start()
        while not done.is_set():
            rec_port.spin_once(0.01)
        rec_port.spin_for(0.1)
        rec_port.shutdown()
        play_port.shutdown()
    return player


def test_inproc_replay_restamps_and_records_everything(bags, robot, tmp_path):
    player = _inproc_round_trip(bags["clean"], tmp_path / "copy", robot, PlayOptions(rate=20.0, wait=0.0))
    with BagReader(bags["clean"]) as a, BagReader(tmp_path / "copy") as b:
        assert player.published == a.message_count
        assert {t: i.count for t, i in b.topics.items() if i.count} == {t: i.count for t, i in a.topics.items()}
        js_a = [m for _, _, m in a.messages(["/joint_states"])]
        js_b = [m for _, _, m in b.messages(["/joint_states"])]
    np.testing.assert_array_equal(np.stack([m.position for m in js_a]), np.stack([m.position for m in js_b]))
    # stamps moved to the time of playing, spacing kept (scaled by the rate)
    sa = np.array([stamp_to_sec(m.header.stamp) for m in js_a])
    sb = np.array([stamp_to_sec(m.header.stamp) for m in js_b])
    assert sb[0] > sa[0] + 1e6
    np.testing.assert_allclose(np.diff(sb), np.diff(sa) / 20.0, atol=1e-6)


def test_inproc_replay_selection_offset_and_remap(bags, robot, tmp_path):
    opts = PlayOptions(rate=50.0, wait=0.0, start_offset=1.0, topics=["/joint_states", "vla/instruction"],
                       remap={"/joint_states": "/joint_states"}, restamp=False)
    _inproc_round_trip(bags["clean"], tmp_path / "part", robot, opts)
    with BagReader(tmp_path / "part") as b:
        counts = {t: i.count for t, i in b.topics.items() if i.count}
        js = [m for _, _, m in b.messages(["/joint_states"])]
    assert counts == {"/joint_states": 101}  # 1.0 s to 3.0 s at 50 Hz; the instruction came before
    assert stamp_to_sec(js[0].header.stamp) == pytest.approx(1_700_000_001.0, abs=1e-6)  # not restamped
    port = make_port("p", "inproc")
    with BagReader(bags["clean"]) as bag:
        with pytest.raises(ValueError, match="not in bag"):
            Replayer(port, bag, PlayOptions(topics=["/nope"]))
        player = Replayer(port, bag, PlayOptions(remap={"joint_states": "/left/joint_states"}))
        assert player.out_names["/joint_states"] == "/left/joint_states"
    port.shutdown()


@pytest.fixture
def dds_env():
    env = loopback_env(dict(os.environ), force=True)
    env["ROS_DOMAIN_ID"] = str(random.randint(100, 200))
    env["VLA_ROS_TRANSPORT"] = "dds"
    return env


def test_record_and_replay_processes_over_dds(bags, tmp_path, dds_env):
    """Two processes on loopback DDS; Ctrl-C leaves a complete bag that independent readers agree on."""
    out = tmp_path / "recorded"
    vla = [sys.executable, "-m", "vla_ros.cli"]
    recorder = subprocess.Popen(vla + ["record", "-o", str(out), "--robot", "so100", "--quiet"], env=dds_env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        player = subprocess.run(vla + ["replay", str(bags["clean"]), "--wait", "20", "--quiet"], env=dds_env,
                                capture_output=True, text=True, timeout=120)
        assert player.returncode == 0, player.stdout + player.stderr
        assert "published 489 messages" in player.stdout
        time.sleep(1.0)  # the last messages reach the recorder
        recorder.send_signal(signal.SIGINT)
        output, _ = recorder.communicate(timeout=30)
    finally:
        if recorder.poll() is None:
            recorder.kill()
    assert recorder.returncode == 0, output
    assert "wrote" in output and not list(tmp_path.glob("*.tmp*"))

    with BagReader(bags["clean"]) as src, BagReader(out) as got:
        for topic in ("/joint_states", "/arm_controller/joint_trajectory", "/vla/instruction", "/vla/action_chunk"):
            assert got.topics[topic].count == src.topics[topic].count, topic  # reliable: every message
        for topic in ("/camera/top/image_raw", "/camera/wrist/image_raw"):  # best effort, loopback
            assert got.topics[topic].count >= 0.9 * src.topics[topic].count
        chunks = [m for _, _, m in got.messages(["/vla/action_chunk"])]
        src_chunks = [m for _, _, m in src.messages(["/vla/action_chunk"])]
    for a, b in zip(src_chunks, chunks):
        np.testing.assert_array_equal(a.actions, b.actions)

    # two independent readers see the same bag, byte for byte
    from mcap.reader import make_reader

    with open(next(out.glob("*.mcap")), "rb") as f:
        reader = make_reader(f)
        schemas = {s.name: s for s in reader.get_summary().schemas.values()}
        by_mcap = [(ch.topic, msg.log_time, bytes(msg.data)) for _, ch, msg in reader.iter_messages(log_time_order=True)]
    assert schemas["vla_ros/msg/ActionChunk"].encoding == "ros2msg"
    assert b"float32[] actions" in schemas["vla_ros/msg/ActionChunk"].data
    with AnyReader([out], default_typestore=get_typestore(Stores.EMPTY)) as reader:
        by_rosbags = [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages()]
        chunk = next(reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages()
                     if c.msgtype == "vla_ros/msg/ActionChunk")
    assert len(by_mcap) == len(by_rosbags) > 400
    assert sorted(by_mcap) == sorted(by_rosbags)
    assert chunk.horizon == 50 and chunk.action_dim == 6
