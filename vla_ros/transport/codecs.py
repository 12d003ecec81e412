"""Message codecs: sensor_msgs Image / CompressedImage <-> numpy, JointState by joint name.

They work on any backend's messages (no middleware import): rosbags dataclasses, where numeric
arrays are numpy arrays, and rclpy messages, where ``uint8[]`` is an ``array.array`` (or
``bytes``). Decoding returns a view on the message's buffer whenever the layout allows (no
copy); encoding builds messages through ``port.new`` so the same code serves every backend.

Images follow sensor_msgs/Image and REP 104 conventions: ``step`` is the row length in bytes
(rows may be padded), ``is_bigendian`` the byte order of multi-byte pixels. Compressed images use
image_transport's ``format`` strings (``"rgb8; jpeg compressed bgr8"``); cv_bridge's plain
``"jpeg"`` / ``"png"`` are read too. OpenCV is only needed for compressed images (and speeds up
colour conversion); cv_bridge is not used: it would add a copy and nothing else here.
"""
from __future__ import annotations

import array
import sys
from typing import Any, NamedTuple, Sequence

import numpy as np

from ..core.embodiment import reorder

try:  # opencv-python(-headless) or ROS's python3-opencv
    import cv2
except ImportError:  # pragma: no cover - exercised only where OpenCV is missing
    cv2 = None


class CodecError(ValueError):
    """A message or array that cannot be converted; the message says what and what is allowed."""


class Encoding(NamedTuple):
    dtype: str  # numpy base type
    channels: int


#: The image encodings the codecs handle (sensor_msgs/image_encodings.hpp names).
ENCODINGS: dict[str, Encoding] = {
    "rgb8": Encoding("uint8", 3),
    "bgr8": Encoding("uint8", 3),
    "rgba8": Encoding("uint8", 4),
    "bgra8": Encoding("uint8", 4),
    "mono8": Encoding("uint8", 1),
    "mono16": Encoding("uint16", 1),
    "16UC1": Encoding("uint16", 1),
}
COMPRESSED_FORMATS = ("jpeg", "png")
_LITTLE = sys.byteorder == "little"


def _encoding(name: str) -> Encoding:
    try:
        return ENCODINGS[name]
    except KeyError:
        raise CodecError(
            f"unsupported image encoding {name!r}; supported: {', '.join(ENCODINGS)}"
        ) from None


def _as_uint8(data: Any) -> np.ndarray:
    """The bytes of a ``uint8[]`` field as a flat uint8 array, without copying buffers."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)  # bytes, bytearray, array.array, memoryview
    except TypeError:
        return np.asarray(data, dtype=np.uint8)  # a list of ints


def _uint8_field(port: Any, buf: np.ndarray) -> Any:
    """A ``uint8[]`` field value for ``port``'s messages from a contiguous uint8 array."""
    if getattr(port, "backend", "") == "rclpy":
        out = array.array("B")
        out.frombytes(buf)  # rclpy assigns array.array('B') without checking every element
        return out
    return buf  # rosbags messages keep the numpy array (no copy)


# -- Image ------------------------------------------------------------------------------------
def image_to_numpy(msg: Any) -> np.ndarray:
    """The pixels of a sensor_msgs/Image: ``(height, width)`` for one channel, else
    ``(height, width, channels)``, in the message's channel order and native byte order.

    A view on the message's data (read-only when the data is) unless multi-byte pixels must be
    byte-swapped. Row padding (``step`` > width * pixel size) is skipped by the view's strides.
    """
    enc = _encoding(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    itemsize = np.dtype(enc.dtype).itemsize
    row = width * enc.channels * itemsize
    if step < row:
        raise CodecError(
            f"{msg.encoding} image {width}x{height}: step {step} is shorter than a row ({row} bytes)"
        )
    buf = _as_uint8(msg.data)
    need = step * (height - 1) + row if height else 0
    if buf.size < need:
        raise CodecError(
            f"{msg.encoding} image {width}x{height} with step {step} needs {step * height} bytes "
            f"of data, got {buf.size}"
        )
    big = bool(msg.is_bigendian) and itemsize > 1
    dtype = np.dtype(enc.dtype).newbyteorder(">" if big else "<") if itemsize > 1 else np.dtype(enc.dtype)
    shape = (height, width, enc.channels)
    strides = (step, enc.channels * itemsize, itemsize)
    out = np.ndarray(shape, dtype=dtype, buffer=buf, strides=strides) if need else np.zeros(shape, dtype)
    if not buf.flags.writeable:
        out.flags.writeable = False
    if itemsize > 1 and big == _LITTLE:  # not native order: one copy, swapped
        out = out.astype(dtype.newbyteorder("="))
    return out[:, :, 0] if enc.channels == 1 else out


def _check_array(array_: np.ndarray, encoding: str) -> tuple[np.ndarray, Encoding]:
    enc = _encoding(encoding)
    arr = np.asarray(array_)
    if arr.ndim == 3 and enc.channels == 1 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    want = "(height, width)" if enc.channels == 1 else f"(height, width, {enc.channels})"
    if (enc.channels == 1 and arr.ndim != 2) or (
        enc.channels > 1 and (arr.ndim != 3 or arr.shape[2] != enc.channels)
    ):
        raise CodecError(f"a {encoding} image must have shape {want}, got {arr.shape}")
    if arr.dtype != np.dtype(enc.dtype):
        raise CodecError(f"a {encoding} image must have dtype {enc.dtype}, got {arr.dtype}")
    return arr, enc


def numpy_to_image(
    port: Any, array_: np.ndarray, encoding: str, stamp_sec: float = 0.0, frame_id: str = ""
) -> Any:
    """A sensor_msgs/Image of ``array_`` (shape and dtype must fit ``encoding``), native byte
    order, no row padding. A C-contiguous array is not copied on the rosbags backends."""
    arr, enc = _check_array(array_, encoding)
    arr = np.ascontiguousarray(arr)
    height, width = arr.shape[:2]
    itemsize = np.dtype(enc.dtype).itemsize
    return port.new(
        "sensor_msgs/msg/Image",
        header=port.header(stamp_sec, frame_id),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=int(itemsize > 1 and not _LITTLE),
        step=width * enc.channels * itemsize,
        data=_uint8_field(port, arr.reshape(-1).view(np.uint8)),
    )


def _scale16(arr: np.ndarray) -> np.ndarray:
    return (arr >> 8).astype(np.uint8)


def to_rgb8(array_: np.ndarray, encoding: str) -> np.ndarray:
    """``(height, width, 3)`` uint8 RGB for the policy. rgb8 input is returned as is; alpha is
    dropped; grey is replicated; 16-bit grey is scaled to 8 bits (value / 256)."""
    arr, _ = _check_array(array_, encoding)
    if encoding == "rgb8":
        return arr
    if encoding in ("mono16", "16UC1"):
        arr, encoding = _scale16(arr), "mono8"
    if cv2 is not None:
        code = {
            "bgr8": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_RGBA2RGB,
            "bgra8": cv2.COLOR_BGRA2RGB, "mono8": cv2.COLOR_GRAY2RGB,
        }[encoding]
        return cv2.cvtColor(np.ascontiguousarray(arr), code)
    if encoding == "bgr8":
        return np.ascontiguousarray(arr[:, :, ::-1])
    if encoding == "rgba8":
        return np.ascontiguousarray(arr[:, :, :3])
    if encoding == "bgra8":
        return np.ascontiguousarray(arr[:, :, 2::-1])
    return np.repeat(arr[:, :, None], 3, axis=2)  # mono8


# -- CompressedImage --------------------------------------------------------------------------
def _require_cv2() -> Any:
    if cv2 is None:
        raise CodecError("compressed images need OpenCV: pip install opencv-python-headless")
    return cv2


def compressed_encoding(msg: Any) -> str:
    """The encoding :func:`compressed_to_numpy` returns by default for ``msg``: the original
    encoding named in an image_transport format string (``"rgb8; jpeg compressed bgr8"`` ->
    rgb8), else what the codec stores (bgr8 / bgra8 / mono8 / mono16, known after decoding: '')."""
    fmt = str(msg.format).strip()
    if ";" in fmt:
        orig = fmt.split(";", 1)[0].strip()
        if orig in ENCODINGS:
            return orig
    return ""


def _codec_name(fmt: str) -> str:
    low = fmt.lower()
    for name in COMPRESSED_FORMATS:
        if name in low:
            return name
    if "jpg" in low:
        return "jpeg"
    raise CodecError(
        f"unsupported CompressedImage format {fmt!r}; supported: {', '.join(COMPRESSED_FORMATS)} "
        "(e.g. 'jpeg', 'rgb8; jpeg compressed bgr8')"
    )


def _from_bgr(img: np.ndarray, encoding: str) -> np.ndarray:
    """Convert OpenCV's decoded BGR(A)/grey ``img`` to ``encoding``."""
    channels = 1 if img.ndim == 2 else img.shape[2]
    enc = _encoding(encoding)
    if enc.dtype == "uint16":
        if img.dtype != np.uint16:
            img = img.astype(np.uint16) << 8
        if channels != 1:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY if channels == 4 else cv2.COLOR_BGR2GRAY)
        return img
    if img.dtype == np.uint16:
        img = _scale16(img)
    key = (channels, encoding)
    codes = {
        (1, "rgb8"): cv2.COLOR_GRAY2RGB, (1, "bgr8"): cv2.COLOR_GRAY2BGR,
        (1, "rgba8"): cv2.COLOR_GRAY2RGBA, (1, "bgra8"): cv2.COLOR_GRAY2BGRA,
        (3, "rgb8"): cv2.COLOR_BGR2RGB, (3, "rgba8"): cv2.COLOR_BGR2RGBA,
        (3, "bgra8"): cv2.COLOR_BGR2BGRA, (3, "mono8"): cv2.COLOR_BGR2GRAY,
        (4, "rgb8"): cv2.COLOR_BGRA2RGB, (4, "bgr8"): cv2.COLOR_BGRA2BGR,
        (4, "rgba8"): cv2.COLOR_BGRA2RGBA, (4, "mono8"): cv2.COLOR_BGRA2GRAY,
    }
    if key in codes:
        return cv2.cvtColor(img, codes[key])
    return img  # already in that layout: (1, mono8), (3, bgr8), (4, bgra8)


def compressed_to_numpy(msg: Any, encoding: str | None = None) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage (jpeg or png) to an array in ``encoding``
    (default :func:`compressed_encoding`, or as decoded: bgr8, bgra8, mono8 or mono16)."""
    cv = _require_cv2()
    _codec_name(str(msg.format))
    target = encoding or compressed_encoding(msg)
    if target:
        _encoding(target)
    img = cv.imdecode(_as_uint8(msg.data), cv.IMREAD_UNCHANGED)
    if img is None:
        raise CodecError(f"could not decode CompressedImage data (format {msg.format!r})")
    if not target:
        return img
    return _from_bgr(img, target)


def numpy_to_compressed(
    port: Any,
    array_: np.ndarray,
    fmt: str = "jpeg",
    *,
    encoding: str = "rgb8",
    stamp_sec: float = 0.0,
    frame_id: str = "",
    quality: int = 90,
) -> Any:
    """A sensor_msgs/CompressedImage of ``array_`` (in ``encoding``) as ``fmt`` (jpeg or png),
    with image_transport's format string, e.g. ``"rgb8; jpeg compressed bgr8"``."""
    cv = _require_cv2()
    if fmt not in COMPRESSED_FORMATS:
        raise CodecError(f"unsupported compression {fmt!r}; supported: {', '.join(COMPRESSED_FORMATS)}")
    arr, enc = _check_array(array_, encoding)
    if enc.channels == 1:
        if enc.dtype == "uint16" and fmt == "jpeg":
            raise CodecError(f"jpeg cannot hold 16-bit {encoding} images; use fmt='png'")
        img, stored = arr, ("mono16" if enc.dtype == "uint16" else "mono8")
    elif enc.channels == 4 and fmt == "png":
        img = arr if encoding == "bgra8" else cv.cvtColor(arr, cv.COLOR_RGBA2BGRA)
        stored = "bgra8"
    else:  # colour to 3-channel BGR (jpeg has no alpha)
        code = {"rgb8": cv.COLOR_RGB2BGR, "rgba8": cv.COLOR_RGBA2BGR, "bgra8": cv.COLOR_BGRA2BGR}
        img = cv.cvtColor(arr, code[encoding]) if encoding in code else arr
        stored = "bgr8"
    params = [cv.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == "jpeg" else []
    ok, buf = cv.imencode(".jpg" if fmt == "jpeg" else ".png", np.ascontiguousarray(img), params)
    if not ok:
        raise CodecError(f"OpenCV could not encode a {encoding} image as {fmt}")
    return port.new(
        "sensor_msgs/msg/CompressedImage",
        header=port.header(stamp_sec, frame_id),
        format=f"{encoding}; {fmt} compressed {stored}",
        data=_uint8_field(port, buf.reshape(-1)),
    )


# -- JointState -------------------------------------------------------------------------------
def joint_positions(msg: Any, names: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Positions of ``names`` (in that order) from a sensor_msgs/JointState, as float64.

    Returns ``(positions, missing)``: ``missing`` lists, in ``names`` order, the joints that the
    message lacks (their entry is NaN) or whose position is not finite. Joints of the message
    that are not in ``names`` are ignored; a name given twice in the message takes its last value.
    """
    out, missing = reorder(np.asarray(msg.position, dtype=np.float64).reshape(-1), list(msg.name), names)
    bad = set(missing) | {n for n, v in zip(names, out) if not np.isfinite(v)}
    return out, [n for n in names if n in bad]
