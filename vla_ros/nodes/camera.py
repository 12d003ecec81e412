"""camera_publisher: publishes ``camera/<name>/image_raw`` (sensor_msgs/Image, sensor QoS) and,
optionally, ``camera/<name>/image_raw/compressed`` (sensor_msgs/CompressedImage).

Sources: ``device`` (an OpenCV capture device: index or /dev/videoN), ``video`` (a file, looped),
``folder`` (images sorted by name, looped) and ``synthetic`` (a scene drawn from the robot's
``joint_states``, for mock hardware).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..core.embodiment import reorder
from ..transport.codecs import numpy_to_compressed, numpy_to_image
from ..transport.params import Param, ParameterError
from ..transport.port import SENSOR_QOS, STATE_QOS, Port

SOURCES = ("synthetic", "device", "video", "folder")
ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

PARAMS = [
    Param("robot", "str", "so100", "Robot description, for the synthetic scene"),
    Param("camera_name", "str", "front", "Camera name: topics camera/<name>/image_raw[/compressed]"),
    Param("source", "str", "synthetic", "Where frames come from", choices=SOURCES),
    Param("device", "str", "", "device: index or /dev/videoN; video: file path; folder: directory of images"),
    Param("width", "int", 640, "Image width in pixels (frames of other sizes are resized)", min=8),
    Param("height", "int", 480, "Image height in pixels", min=8),
    Param("rate", "float", 30.0, "Publish rate in Hz", min=0.1, max=1000.0),
    Param("frame_id", "str", "", "header.frame_id; empty gives <camera_name>_optical_frame"),
    Param("encoding", "str", "rgb8", "Image encoding", choices=ENCODINGS),
    Param("publish_compressed", "bool", False, "Also publish image_raw/compressed"),
    Param("compressed_format", "str", "jpeg", "Format of the compressed stream", choices=("jpeg", "png")),
]


class FrameSource:
    """Yields RGB uint8 frames of the configured size."""

    def read(self) -> np.ndarray | None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


class CaptureSource(FrameSource):
    """An OpenCV capture: a device (index or path) or a video file (looped)."""

    def __init__(self, uri: str, width: int, height: int, loop: bool) -> None:
        target: int | str = int(uri) if uri.isdigit() else uri
        if not uri:
            raise ParameterError("source needs the 'device' parameter (a camera index, /dev/videoN or a video file)")
        if loop and not Path(uri).is_file():
            raise ParameterError(f"video file '{uri}' not found")
        self.cap = cv2.VideoCapture(target)
        if not self.cap.isOpened():
            raise ParameterError(f"cannot open '{uri}' with OpenCV; check the device/file and permissions")
        if not loop:
            self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self.loop, self.size = loop, (width, height)

    def read(self) -> np.ndarray | None:
        ok, frame = self.cap.read()
        if not ok and self.loop:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self.cap.read()
        if not ok:
            return None
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self.cap.release()


class FolderSource(FrameSource):
    def __init__(self, folder: str, width: int, height: int) -> None:
        self.files = sorted(p for p in Path(folder).glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise ParameterError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder '{folder}'")
        self.size, self.i = (width, height), 0

    def read(self) -> np.ndarray | None:
        path = self.files[self.i % len(self.files)]
        self.i += 1
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            return None
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


class SyntheticSource(FrameSource):
    """The mock robot's scene, drawn from the latest joint state."""

    def __init__(self, spec, camera: str, width: int, height: int) -> None:
        from ..robots.scene import SceneRenderer

        self.spec = spec
        self.renderer = SceneRenderer(spec, camera, width, height)
        self.q = spec.home.copy()
        self.frame = 0

    def on_joint_state(self, names, positions) -> None:
        q, missing = reorder(positions, names, self.spec.joint_names)
        if not missing and np.all(np.isfinite(q)):
            self.q = q

    def read(self) -> np.ndarray | None:
        self.frame += 1
        return self.renderer.render(self.q, self.frame)


def _convert(rgb: np.ndarray, encoding: str) -> np.ndarray:
    if encoding == "rgb8":
        return rgb
    code = {"bgr8": cv2.COLOR_RGB2BGR, "rgba8": cv2.COLOR_RGB2RGBA, "bgra8": cv2.COLOR_RGB2BGRA,
            "mono8": cv2.COLOR_RGB2GRAY}[encoding]
    return cv2.cvtColor(rgb, code)


class CameraPublisher:
    def __init__(self, port: Port) -> None:
        self.port = port
        p = self.params = port.parameters(PARAMS)
        self.frame_id = p.frame_id or f"{p.camera_name}_optical_frame"
        if p.source == "synthetic":
            from ..robots import load_robot

            self.source: FrameSource = SyntheticSource(load_robot(p.robot), p.camera_name, p.width, p.height)
            port.subscribe("joint_states", "sensor_msgs/msg/JointState",
                           lambda m: self.source.on_joint_state(list(m.name), m.position), STATE_QOS)
        elif p.source == "folder":
            self.source = FolderSource(p.device, p.width, p.height)
        else:
            self.source = CaptureSource(p.device, p.width, p.height, loop=p.source == "video")
        topic = f"camera/{p.camera_name}/image_raw"
        self.pub = port.publisher(topic, "sensor_msgs/msg/Image", SENSOR_QOS)
        self.pub_compressed = (port.publisher(f"{topic}/compressed", "sensor_msgs/msg/CompressedImage", SENSOR_QOS)
                               if p.publish_compressed else None)
        self.published = 0
        self.timer = port.timer(1.0 / p.rate, self._tick)
        port.logger.info("camera_publisher: %s %s %dx%d %s at %.1f Hz -> %s", p.source, p.device or p.camera_name,
                         p.width, p.height, p.encoding, p.rate, port.resolve(topic))

    def _tick(self) -> None:
        stamp = self.port.now()
        rgb = self.source.read()
        if rgb is None:
            self.port.warn_once("no_frame", f"camera {self.params.camera_name}: source returned no frame")
            return
        frame = _convert(rgb, self.params.encoding)
        self.pub.publish(numpy_to_image(self.port, frame, self.params.encoding, stamp, self.frame_id))
        if self.pub_compressed is not None:
            self.pub_compressed.publish(numpy_to_compressed(
                self.port, frame, self.params.compressed_format, encoding=self.params.encoding,
                stamp_sec=stamp, frame_id=self.frame_id))
        self.published += 1

    def close(self) -> None:
        self.timer.cancel()
        self.source.close()


def main(argv: list[str] | None = None) -> int:
    from .runner import run

    return run(CameraPublisher, "camera_publisher", argv)


if __name__ == "__main__":
    raise SystemExit(main())
