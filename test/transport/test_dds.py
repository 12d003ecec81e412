"""The dds backend between separate processes on loopback, checked on the wire.

Peers (dds_peer.py) run in their own processes with a DdsPort. What they send is read here with a
plain Cyclone DDS reader and a hand-written IDL type, i.e. the way a ROS 2 node on
rmw_cyclonedds_cpp would see it: topic ``rt/...``, type ``pkg::msg::dds_::Type_``, XCDR1; the
raw bytes are decoded with the rosbags typestore and, as a cross-check, with Cyclone's own
deserializer. Waits are generous and nothing asserts on time.
"""

import json
import signal
import threading
from dataclasses import dataclass

import numpy as np
import pytest
from cyclonedds._clayer import ddspy_take
from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsPublication
from cyclonedds.core import InstanceState, SampleState, ViewState
from cyclonedds.domain import DomainParticipant
from cyclonedds.idl import IdlStruct
from cyclonedds.idl.types import float32, float64, int32, sequence, uint8, uint32, uint64
from cyclonedds.qos import Policy, Qos
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

from dds_harness import TIMEOUT, wait_for
from dds_peer import JOINTS, make_message, summary, frame_for
from vla_ros.transport import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS, QoS, types
from vla_ros.transport import dds, make_port
from vla_ros.transport.params import Param
from vla_ros.transport.dds import DdsError, DdsPort, dds_topic_name, dds_type_name
from vla_ros.transport.inproc import InprocPort

ANY = SampleState.Any | ViewState.Any | InstanceState.Any


# Hand-written IDL, as rosidl generates it for these messages (independent of vla_ros's own
# typestore-derived types).
@dataclass
class Time_(IdlStruct, typename="builtin_interfaces::msg::dds_::Time_"):
    sec: int32
    nanosec: uint32


@dataclass
class Header_(IdlStruct, typename="std_msgs::msg::dds_::Header_"):
    stamp: Time_
    frame_id: str


@dataclass
class String_(IdlStruct, typename="std_msgs::msg::dds_::String_"):
    data: str


@dataclass
class Image_(IdlStruct, typename="sensor_msgs::msg::dds_::Image_"):
    header: Header_
    height: uint32
    width: uint32
    encoding: str
    is_bigendian: uint8
    step: uint32
    data: sequence[uint8]


@dataclass
class ActionChunk_(IdlStruct, typename="vla_ros::msg::dds_::ActionChunk_"):
    header: Header_
    chunk_id: uint64
    joint_names: sequence[str]
    horizon: uint32
    action_dim: uint32
    step_period: float64
    actions: sequence[float32]
    model_variant: str
    inference_latency: float64
    instruction_id: uint32


def ros_reader_qos(reliable: bool = True, transient_local: bool = False) -> Qos:
    """What a ROS 2 subscription asks for (XCDR1, keep last 10)."""
    return Qos(
        Policy.Reliability.Reliable(duration(milliseconds=100)) if reliable else Policy.Reliability.BestEffort,
        Policy.History.KeepLast(10),
        Policy.Durability.TransientLocal if transient_local else Policy.Durability.Volatile,
        Policy.DataRepresentation(use_cdrv0_representation=True),
    )


@pytest.fixture(scope="module")
def participant(private_domain):
    dp = DomainParticipant(private_domain)
    yield dp
    dds._delete(dp)


def take_raw(participant, topic_name: str, idl_type, count: int, qos: Qos | None = None) -> list[bytes]:
    """Raw serialized samples read on ``topic_name`` by a plain Cyclone DDS reader."""
    reader = DataReader(participant, Topic(participant, topic_name, idl_type), qos or ros_reader_qos())
    got: list[bytes] = []

    def more() -> bool:
        got.extend(data for data, info in ddspy_take(reader._ref, ANY, 16) if info.valid_data)
        return len(got) >= count

    assert wait_for(more), f"no data on {topic_name} within {TIMEOUT} s"
    dds._delete(reader)
    return got


def publication(participant, topic_name: str):
    """The discovery data (DCPSPublication) of the remote writer on ``topic_name``."""
    reader = BuiltinDataReader(participant, BuiltinTopicDcpsPublication)
    found = []

    def seen() -> bool:
        found.extend(s for s in reader.take(N=64) if getattr(s, "topic_name", None) == topic_name)
        return bool(found)

    assert wait_for(seen), f"no writer on {topic_name} discovered"
    return found[0]


# -- names and bytes (no second process needed) -------------------------------------------------
def test_ros2_names():
    assert dds_type_name("sensor_msgs/msg/Image") == "sensor_msgs::msg::dds_::Image_"
    assert dds_type_name("vla_ros/msg/ActionChunk") == "vla_ros::msg::dds_::ActionChunk_"
    assert dds_topic_name("/vla/instruction") == "rt/vla/instruction"
    with pytest.raises(ValueError, match="fully qualified"):
        dds_topic_name("vla/instruction")
    with pytest.raises(ValueError, match="pkg/msg/Type"):
        dds_type_name("Image")


def test_idl_type_follows_the_typestore():
    image = dds.idl_type("sensor_msgs/msg/Image")
    assert image.__idl__.idl_transformed_typename == "sensor_msgs::msg::dds_::Image_"
    assert list(image.__annotations__) == [name for name, _ in types.typestore().fielddefs["sensor_msgs/msg/Image"][1]]
    with pytest.raises(KeyError, match="unknown message type"):
        dds.idl_type("nope_msgs/msg/Nothing")


@pytest.mark.parametrize("text", ["", "a", "ab", "abc", "abcd", "hello world"])
def test_wire_bytes_are_the_typestore_cdr_padded_to_4(text):
    port_msg = types.new("std_msgs/msg/String", data=text)
    rosbags = bytes(types.serialize(port_msg, "std_msgs/msg/String"))
    wire = bytes(dds.serialize(port_msg, "std_msgs/msg/String"))
    pad = -len(rosbags) % 4
    assert len(wire) % 4 == 0
    assert wire[:2] == b"\x00\x01" and wire[3] == pad  # CDR_LE, padding count in the options
    assert wire[4:] == rosbags[4:] + bytes(pad)
    assert types.deserialize(wire, "std_msgs/msg/String").data == text
    assert String_.deserialize(wire).data == text  # Cyclone's XCDR1 decoder agrees


def test_reused_serialization_buffer_grows_and_stays_exact():
    buf = bytearray()
    for text in ["a much longer string than the next one", "short", ""]:
        msg = types.new("std_msgs/msg/String", data=text)
        view = dds.serialize(msg, "std_msgs/msg/String", buf)
        assert bytes(view) == bytes(dds.serialize(msg, "std_msgs/msg/String"))
        view.release()


def test_domain_id_is_validated(monkeypatch):
    monkeypatch.setenv("ROS_DOMAIN_ID", "abc")
    with pytest.raises(ValueError, match="ROS_DOMAIN_ID"):
        dds.domain_id()
    monkeypatch.setenv("ROS_DOMAIN_ID", "")
    assert dds.domain_id() == 0


def test_make_port_parameters_and_names():
    port = make_port("camera", "dds", namespace="robot1", parameters={"rate": 5},
                     remappings={"image_raw": "/cams/front"})
    try:
        assert isinstance(port, DdsPort) and port.backend == "dds"
        assert port.parameters([Param("rate", "float", 30.0, "frames per second")]).rate == 5.0
        assert port._topic("image_raw") == "/cams/front"
        assert port._topic("info") == "/robot1/info"
        assert port._topic("~/status") == "/robot1/camera/status"
    finally:
        port.shutdown()


# -- one process, two ports ---------------------------------------------------------------------
def test_same_process_round_trip_and_counts(topic):
    a, b = DdsPort("talker"), DdsPort("listener")
    try:
        got = []
        pub = a.publisher(topic, "std_msgs/msg/String")
        sub = b.subscribe(topic, "std_msgs/msg/String", lambda m: got.append(m.data))
        assert wait_for(lambda: pub.subscription_count == 1 and sub.publisher_count == 1)
        pub.publish(a.new("std_msgs/msg/String", data="x"))
        assert wait_for(lambda: got, b)
        assert got == ["x"]
        a.publisher(f"{topic}_leased", "std_msgs/msg/String", QoS(liveliness_lease=0.02))
        assert dds._Domain.pacer[0] == pytest.approx(0.02 / dds.LIVELINESS_PACING)
        with pytest.raises(TypeError, match="expected std_msgs/msg/String"):
            pub.publish(a.new("std_msgs/msg/Bool"))
        with pytest.raises(DdsError, match="already used with type std_msgs/msg/String"):
            a.publisher(topic, "std_msgs/msg/Bool")
        with pytest.raises(KeyError, match="unknown message type"):
            a.publisher("other", "std_msgs/msg/Nope")
    finally:
        a.shutdown()
        b.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        pub.publish(a.new("std_msgs/msg/String", data="late"))
    a.shutdown()  # twice is fine


def test_lists_assigned_to_numeric_fields_are_published(topic):
    """Node code may assign plain lists after port.new(); inproc accepts that, so dds must too."""
    a, b = DdsPort("state"), DdsPort("reader")
    try:
        got = []
        pub = a.publisher(topic, "sensor_msgs/msg/JointState")
        b.subscribe(topic, "sensor_msgs/msg/JointState", got.append)
        assert wait_for(lambda: pub.subscription_count == 1)
        msg = a.new("sensor_msgs/msg/JointState", name=["a", "b"])
        msg.position = [0.5, -1.0]
        pub.publish(msg)
        assert wait_for(lambda: got, b)
        np.testing.assert_array_equal(got[0].position, [0.5, -1.0])
        bad = a.new("sensor_msgs/msg/JointState")
        bad.name = 5
        with pytest.raises(TypeError, match="cannot serialize this sensor_msgs/msg/JointState"):
            pub.publish(bad)
    finally:
        a.shutdown()
        b.shutdown()


# -- across processes, read on the wire ---------------------------------------------------------
def test_string_on_the_wire_with_namespace_and_remap(participant, peer, topic):
    peer("pub", "--kind", "string", "--topic", "chatter", "--namespace", "robot1",
         "--remap", f"chatter:={topic}", "--period", "0.02")
    name = f"rt/robot1/{topic}"
    info = publication(participant, name)
    assert info.type_name == "std_msgs::msg::dds_::String_"
    assert info.qos[Policy.DataRepresentation] == Policy.DataRepresentation(use_cdrv0_representation=True)
    assert isinstance(info.qos[Policy.Reliability], Policy.Reliability.Reliable)
    raw = take_raw(participant, name, String_, 3)
    for data in raw:
        assert data[:2] == b"\x00\x01" and len(data) % 4 == 0  # XCDR1 little endian
        text = types.deserialize(data, "std_msgs/msg/String").data
        assert text.startswith("hello ")
        assert String_.deserialize(data).data == text


def test_action_chunk_on_the_wire(participant, peer, topic):
    peer("pub", "--kind", "chunk", "--topic", topic, "--period", "0.02")
    raw = take_raw(participant, f"rt/{topic}", ActionChunk_, 2)
    for data in raw:
        chunk = types.deserialize(data, "vla_ros/msg/ActionChunk")
        i = int(chunk.chunk_id)
        assert list(chunk.joint_names) == JOINTS
        assert (chunk.horizon, chunk.action_dim) == (50, 6)
        assert chunk.actions.dtype == np.float32 and chunk.actions.shape == (300,)
        expected = make_message(InprocPort("expected"), "chunk", i)
        np.testing.assert_array_equal(chunk.actions, expected.actions)
        assert types.stamp_to_sec(chunk.header.stamp) == pytest.approx(2000.0 + i + 0.25)
        assert chunk.model_variant == "tiny" and chunk.inference_latency == 0.0125
        independent = ActionChunk_.deserialize(data)
        assert independent.chunk_id == i and list(independent.joint_names) == JOINTS
        np.testing.assert_allclose(independent.actions, expected.actions)
    assert publication(participant, f"rt/{topic}").type_name == "vla_ros::msg::dds_::ActionChunk_"


def test_image_640x480_across_processes(participant, peer, topic):
    peer("pub", "--kind", "image", "--topic", topic, "--qos", "sensor", "--period", "0.05")
    assert publication(participant, f"rt/{topic}").type_name == "sensor_msgs::msg::dds_::Image_"
    # on the wire, read as a best-effort ROS 2 subscription would
    data = take_raw(participant, f"rt/{topic}", Image_, 1, ros_reader_qos(reliable=False))[0]
    image = types.deserialize(data, "sensor_msgs/msg/Image")
    assert (image.height, image.width, image.step, image.encoding) == (480, 640, 1920, "rgb8")
    i = int(types.stamp_to_sec(image.header.stamp) - 1000.0)
    assert bytes(image.data) == frame_for(i).tobytes()
    # and through a DdsPort subscription in this process
    port = DdsPort("viewer")
    try:
        got = []
        port.subscribe(topic, "sensor_msgs/msg/Image", lambda m: got.append(summary("image", m)), SENSOR_QOS)
        assert wait_for(lambda: len(got) >= 2, port)
        for s in got:
            assert s["equal"] and s["shape"] == [480, 640, 3] and s["frame_id"] == "camera_front"
    finally:
        port.shutdown()


def test_process_to_process_with_transient_local(peer, topic):
    """A latched message published before the subscriber process exists still reaches it."""
    port = DdsPort("enabler")
    try:
        pub = port.publisher(topic, "std_msgs/msg/Bool", LATCHED_QOS)
        pub.publish(port.new("std_msgs/msg/Bool", data=True))
        listener = peer("sub", "--kind", "bool", "--topic", topic, "--qos", "latched", "--count", "1")
        line = listener.readline()
        assert line is not None, listener.stderr()
        assert json.loads(line) == {"data": True}
        assert listener.wait() == 0
    finally:
        port.shutdown()


def test_reliability_compatibility(peer, topic):
    """As in ROS 2: a best-effort subscription gets a reliable publisher's messages; a reliable
    subscription does not match a best-effort publisher."""
    port = DdsPort("checker")
    try:
        reliable_topic, best_effort_topic = f"{topic}_rel", f"{topic}_be"
        peer("pub", "--topic", reliable_topic, "--qos", "reliable", "--period", "0.02")
        peer("pub", "--topic", best_effort_topic, "--qos", "sensor", "--period", "0.02", "--name", "peer2")
        got = {"be<-rel": [], "be<-be": [], "rel<-be": []}
        port.subscribe(reliable_topic, "std_msgs/msg/String", got["be<-rel"].append, SENSOR_QOS)
        port.subscribe(best_effort_topic, "std_msgs/msg/String", got["be<-be"].append, SENSOR_QOS)
        strict = port.subscribe(best_effort_topic, "std_msgs/msg/String", got["rel<-be"].append, RELIABLE_QOS)
        assert wait_for(lambda: len(got["be<-rel"]) >= 3 and len(got["be<-be"]) >= 3, port)
        assert got["rel<-be"] == [] and strict.publisher_count == 0
    finally:
        port.shutdown()


def _watch_liveliness(port, topic):
    events = {"msgs": 0, "lost": 0}
    sub = port.subscribe(
        topic, "std_msgs/msg/String", lambda m: events.__setitem__("msgs", events["msgs"] + 1),
        RELIABLE_QOS, on_liveliness_lost=lambda: events.__setitem__("lost", events["lost"] + 1),
    )
    return sub, events


def test_liveliness_lost_when_publisher_process_is_killed(peer, topic):
    """SIGKILL: no goodbye; the writer's 20 ms liveliness lease runs out. (Cyclone's participant
    lease, 10 s, would be the fallback; the wait below is shorter than that.)"""
    port = DdsPort("bridge")
    try:
        sub, events = _watch_liveliness(port, topic)
        talker = peer("pub", "--topic", topic, "--lease", "0.02", "--period", "0.02")
        assert wait_for(lambda: events["msgs"] >= 3, port)
        assert sub.publisher_count == 1
        # On a starved machine a 20 ms lease may lapse (and recover) before the kill: count from
        # a message that has just arrived.
        msgs = events["msgs"]
        assert wait_for(lambda: events["msgs"] > msgs, port)
        lost_before = events["lost"]
        talker.signal(signal.SIGKILL)
        assert wait_for(lambda: events["lost"] > lost_before, port, timeout=8.0)
    finally:
        port.shutdown()


@pytest.mark.parametrize("how", ["shutdown", "atexit"])
def test_liveliness_lost_when_publisher_process_exits_cleanly(peer, topic, how):
    """A clean exit says goodbye at once, also when the program forgot port.shutdown() (the
    module's atexit hook). Without a lease, only that goodbye can beat the 10 s participant
    lease, hence the shorter wait."""
    port = DdsPort("bridge")
    try:
        sub, events = _watch_liveliness(port, topic)
        extra = ["--skip-shutdown"] if how == "atexit" else []
        talker = peer("pub", "--topic", topic, "--period", "0.02", *extra)  # no lease
        assert wait_for(lambda: events["msgs"] >= 3, port)
        talker.send("stop")
        assert talker.readline().startswith("STOPPED") and talker.wait() == 0
        assert wait_for(lambda: events["lost"] == 1, port, timeout=8.0)
        assert wait_for(lambda: sub.publisher_count == 0, port)
    finally:
        port.shutdown()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signals_make_spin_return(peer, sig):
    node = peer("spin")
    node.signal(sig)
    assert node.readline() == "SPIN RETURNED", node.stderr()
    assert node.wait() == 0


def test_spin_returns_on_shutdown_from_another_thread(topic):
    port = DdsPort("worker")
    port.subscribe(topic, "std_msgs/msg/String", lambda m: None)
    threading.Timer(0.2, port.shutdown).start()
    port.spin()  # returns
