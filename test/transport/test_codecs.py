"""Image / CompressedImage / JointState codecs, on rosbags messages and rclpy-like messages."""
from __future__ import annotations

import array
from types import SimpleNamespace

import numpy as np
import pytest

from vla_ros.transport import codecs, types
from vla_ros.transport.codecs import CodecError
from vla_ros.transport.inproc import InprocPort

SHAPES = {  # encoding -> (dtype, channels)
    "rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4), "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1), "mono16": (np.uint16, 1), "16UC1": (np.uint16, 1),
}


@pytest.fixture
def port():
    p = InprocPort("codec_test")
    yield p
    p.shutdown()


def sample(encoding: str, height: int = 6, width: int = 5) -> np.ndarray:
    dtype, channels = SHAPES[encoding]
    rng = np.random.default_rng(len(encoding))
    high = 65536 if dtype == np.uint16 else 256
    shape = (height, width) if channels == 1 else (height, width, channels)
    return rng.integers(0, high, shape, dtype=dtype)


def rclpy_like_image(msg, data_type=array.array):
    """What rclpy hands a callback: same fields, uint8[] as array.array('B') (or bytes)."""
    raw = bytes(msg.data)
    data = array.array("B", raw) if data_type is array.array else raw
    return SimpleNamespace(height=msg.height, width=msg.width, encoding=msg.encoding,
                           is_bigendian=msg.is_bigendian, step=msg.step, data=data)


def test_supported_encodings_are_the_issue_list():
    assert set(codecs.ENCODINGS) == set(SHAPES)


@pytest.mark.parametrize("encoding", list(SHAPES))
def test_image_round_trip_without_copies(port, encoding):
    arr = sample(encoding)
    msg = codecs.numpy_to_image(port, arr, encoding, 12.5, "cam")
    dtype, channels = SHAPES[encoding]
    assert (msg.height, msg.width, msg.encoding) == (6, 5, encoding)
    assert msg.step == 5 * channels * np.dtype(dtype).itemsize and msg.is_bigendian == 0
    assert msg.data.dtype == np.uint8
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (12, 500_000_000, "cam")
    back = codecs.image_to_numpy(msg)
    assert back.dtype == dtype and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)
    assert np.shares_memory(back, arr)  # numpy -> message -> numpy: no copy on the way


@pytest.mark.parametrize("encoding", list(SHAPES))
def test_image_through_cdr_bytes(port, encoding):
    arr = sample(encoding)
    raw = bytes(types.serialize(codecs.numpy_to_image(port, arr, encoding), "sensor_msgs/msg/Image"))
    msg = types.deserialize(raw, "sensor_msgs/msg/Image")
    back = codecs.image_to_numpy(msg)
    np.testing.assert_array_equal(back, arr)
    assert not back.flags.writeable  # a view on the received bytes


@pytest.mark.parametrize("encoding", list(SHAPES))
@pytest.mark.parametrize("data_type", [array.array, bytes])
def test_image_from_rclpy_like_message(port, encoding, data_type):
    arr = sample(encoding)
    msg = rclpy_like_image(codecs.numpy_to_image(port, arr, encoding), data_type)
    np.testing.assert_array_equal(codecs.image_to_numpy(msg), arr)


@pytest.mark.parametrize("encoding", list(SHAPES))
def test_row_padding_is_skipped_by_strides(encoding):
    arr = sample(encoding, height=4, width=3)
    dtype, channels = SHAPES[encoding]
    row = 3 * channels * np.dtype(dtype).itemsize
    step = row + 7  # odd padding, filled with junk
    buf = np.full(step * 4, 0xAB, dtype=np.uint8)
    for y in range(4):
        buf[y * step:y * step + row] = np.ascontiguousarray(arr[y]).view(np.uint8).reshape(-1)
    msg = types.new("sensor_msgs/msg/Image", height=4, width=3, encoding=encoding, step=step, data=buf)
    back = codecs.image_to_numpy(msg)
    np.testing.assert_array_equal(back, arr)
    assert np.shares_memory(back, buf)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
def test_big_endian_16_bit(encoding):
    values = np.array([[1, 256, 65535], [4660, 0, 43981]], dtype=np.uint16)
    msg = types.new("sensor_msgs/msg/Image", height=2, width=3, encoding=encoding, is_bigendian=1,
                    step=6, data=np.frombuffer(values.astype(">u2").tobytes(), dtype=np.uint8))
    back = codecs.image_to_numpy(msg)
    np.testing.assert_array_equal(back, values)
    assert back.dtype == np.uint16 and back.dtype.isnative


def test_is_bigendian_does_not_matter_for_8_bit(port):
    arr = sample("rgb8")
    msg = codecs.numpy_to_image(port, arr, "rgb8")
    msg.is_bigendian = 1
    np.testing.assert_array_equal(codecs.image_to_numpy(msg), arr)


def test_unsupported_encoding_names_it_and_the_supported_list(port):
    msg = types.new("sensor_msgs/msg/Image", height=1, width=1, encoding="yuv422", step=2,
                    data=np.zeros(2, np.uint8))
    with pytest.raises(CodecError, match=r"'yuv422'.*rgb8, bgr8, rgba8, bgra8, mono8, mono16, 16UC1"):
        codecs.image_to_numpy(msg)
    with pytest.raises(ValueError):  # CodecError is a ValueError
        codecs.numpy_to_image(port, np.zeros((2, 2), np.uint8), "8UC7")


def test_inconsistent_images_are_refused(port):
    short_step = types.new("sensor_msgs/msg/Image", height=2, width=4, encoding="rgb8", step=10,
                           data=np.zeros(24, np.uint8))
    with pytest.raises(CodecError, match="step 10 is shorter than a row"):
        codecs.image_to_numpy(short_step)
    short_data = types.new("sensor_msgs/msg/Image", height=2, width=4, encoding="rgb8", step=12,
                           data=np.zeros(20, np.uint8))
    with pytest.raises(CodecError, match="needs 24 bytes of data, got 20"):
        codecs.image_to_numpy(short_data)
    with pytest.raises(CodecError, match=r"shape \(height, width, 3\)"):
        codecs.numpy_to_image(port, np.zeros((4, 4), np.uint8), "rgb8")
    with pytest.raises(CodecError, match="dtype uint16"):
        codecs.numpy_to_image(port, np.zeros((4, 4), np.uint8), "mono16")


@pytest.mark.parametrize("encoding", list(SHAPES))
def test_to_rgb8(encoding):
    arr = sample(encoding)
    rgb = codecs.to_rgb8(arr, encoding)
    assert rgb.shape == (6, 5, 3) and rgb.dtype == np.uint8
    expected = {
        "rgb8": lambda a: a, "bgr8": lambda a: a[:, :, ::-1], "rgba8": lambda a: a[:, :, :3],
        "bgra8": lambda a: a[:, :, 2::-1], "mono8": lambda a: np.stack([a] * 3, axis=2),
        "mono16": lambda a: np.stack([a >> 8] * 3, axis=2).astype(np.uint8),
        "16UC1": lambda a: np.stack([a >> 8] * 3, axis=2).astype(np.uint8),
    }[encoding](arr)
    np.testing.assert_array_equal(rgb, expected)


def test_to_rgb8_of_a_padded_view(port):
    arr = sample("bgr8", height=4, width=3)
    step = 3 * 3 + 3
    buf = np.zeros(step * 4, np.uint8)
    for y in range(4):
        buf[y * step:y * step + 9] = arr[y].reshape(-1)
    msg = types.new("sensor_msgs/msg/Image", height=4, width=3, encoding="bgr8", step=step, data=buf)
    np.testing.assert_array_equal(codecs.to_rgb8(codecs.image_to_numpy(msg), "bgr8"), arr[:, :, ::-1])


# -- CompressedImage ----------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", list(SHAPES))
def test_png_round_trip_is_lossless(port, encoding):
    arr = sample(encoding, 16, 12)
    msg = codecs.numpy_to_compressed(port, arr, "png", encoding=encoding, stamp_sec=3.0, frame_id="cam")
    stored = {"rgba8": "bgra8", "bgra8": "bgra8", "mono8": "mono8", "mono16": "mono16", "16UC1": "mono16"}
    assert msg.format == f"{encoding}; png compressed {stored.get(encoding, 'bgr8')}"
    assert msg.header.frame_id == "cam" and msg.header.stamp.sec == 3
    assert codecs.compressed_encoding(msg) == encoding
    back = codecs.compressed_to_numpy(msg)
    assert back.dtype == arr.dtype
    np.testing.assert_array_equal(back, arr)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
def test_jpeg_round_trip_is_close(port, encoding):
    y, x = np.mgrid[0:48, 0:64]
    smooth = {1: (x * 4) % 256, 3: np.stack([x * 4, y * 5, x + y], axis=2),
              4: np.stack([x * 4, y * 5, x + y, np.full_like(x, 255)], axis=2)}
    arr = smooth[SHAPES[encoding][1]].astype(np.uint8)
    msg = codecs.numpy_to_compressed(port, arr, "jpeg", encoding=encoding, quality=95)
    assert msg.format == f"{encoding}; jpeg compressed {'mono8' if encoding == 'mono8' else 'bgr8'}"
    back = codecs.compressed_to_numpy(msg)
    if encoding in ("rgba8", "bgra8"):  # jpeg has no alpha: decoded opaque
        assert np.all(back[:, :, 3] == 255)
    assert back.shape == arr.shape
    assert np.abs(back.astype(int) - arr.astype(int)).mean() < 3.0


def test_compressed_to_a_requested_encoding_and_cv_bridge_format(port):
    arr = sample("rgb8", 8, 8)
    msg = codecs.numpy_to_compressed(port, arr, "png", encoding="rgb8")
    np.testing.assert_array_equal(codecs.compressed_to_numpy(msg, "bgr8"), arr[:, :, ::-1])
    np.testing.assert_array_equal(codecs.compressed_to_numpy(msg, "rgb8"), arr)
    # cv_bridge.cv2_to_compressed_imgmsg writes just "png": OpenCV's own layout (BGR) comes back
    plain = SimpleNamespace(format="png", data=bytes(msg.data))
    assert codecs.compressed_encoding(plain) == ""
    np.testing.assert_array_equal(codecs.compressed_to_numpy(plain), arr[:, :, ::-1])
    np.testing.assert_array_equal(codecs.compressed_to_numpy(plain, "rgb8"), arr)
    rclpy_like = SimpleNamespace(format=msg.format, data=array.array("B", bytes(msg.data)))
    np.testing.assert_array_equal(codecs.compressed_to_numpy(rclpy_like), arr)


def test_compressed_errors(port):
    with pytest.raises(CodecError, match="use fmt='png'"):
        codecs.numpy_to_compressed(port, sample("mono16"), "jpeg", encoding="mono16")
    with pytest.raises(CodecError, match="unsupported compression 'webp'"):
        codecs.numpy_to_compressed(port, sample("rgb8"), "webp")
    with pytest.raises(CodecError, match="unsupported CompressedImage format 'tiff'"):
        codecs.compressed_to_numpy(SimpleNamespace(format="tiff", data=b"\0"))
    with pytest.raises(CodecError, match="could not decode"):
        codecs.compressed_to_numpy(SimpleNamespace(format="jpeg", data=b"not a jpeg"))
    with pytest.raises(CodecError, match="unsupported image encoding 'yuv422'"):
        codecs.compressed_to_numpy(SimpleNamespace(format="png", data=b"\0"), "yuv422")


# -- JointState ---------------------------------------------------------------------------------
def test_joint_positions_reordered_by_name(port):
    msg = port.new("sensor_msgs/msg/JointState", name=["elbow", "extra", "shoulder", "wrist"],
                   position=[0.5, 9.0, -1.0, 0.25])
    pos, missing = codecs.joint_positions(msg, ["shoulder", "elbow", "wrist"])
    assert pos.dtype == np.float64
    np.testing.assert_array_equal(pos, [-1.0, 0.5, 0.25])
    assert missing == []


def test_joint_positions_missing_and_non_finite(port):
    msg = port.new("sensor_msgs/msg/JointState", name=["a", "b", "c"], position=[1.0, float("nan"), float("inf")])
    pos, missing = codecs.joint_positions(msg, ["a", "b", "gripper", "c"])
    assert missing == ["b", "gripper", "c"]
    assert pos[0] == 1.0 and np.isnan(pos[2])
    empty = port.new("sensor_msgs/msg/JointState", name=["a", "b"], position=[])  # names, no positions
    assert codecs.joint_positions(empty, ["a"])[1] == ["a"]


def test_joint_positions_of_rclpy_like_message():
    msg = SimpleNamespace(name=["j2", "j1"], position=array.array("d", [2.0, 1.0]))
    pos, missing = codecs.joint_positions(msg, ["j1", "j2"])
    np.testing.assert_array_equal(pos, [1.0, 2.0])
    assert missing == []
