"""camera_publisher sources: synthetic scene, image folder, video file; bad sources fail clearly."""
import cv2
import numpy as np
import pytest

from vla_ros.nodes.camera import CameraPublisher
from vla_ros.transport.codecs import compressed_to_numpy, image_to_numpy
from vla_ros.transport.inproc import Bus, InprocPort, spin_ports
from vla_ros.transport.params import ParameterError


def run_camera(params, seconds=0.4, compressed=False):
    bus = Bus()
    cam = InprocPort("camera", parameters=params, bus=bus)
    user = InprocPort("user", bus=bus)
    got, comp = [], []
    name = params.get("camera_name", "front")
    user.subscribe(f"camera/{name}/image_raw", "sensor_msgs/msg/Image", got.append)
    user.subscribe(f"camera/{name}/image_raw/compressed", "sensor_msgs/msg/CompressedImage", comp.append)
    node = CameraPublisher(cam)
    spin_ports([cam, user], seconds)
    node.close()
    cam.shutdown(), user.shutdown()
    return got, comp


def test_synthetic_scene_follows_joint_states(so100):
    got, comp = run_camera({"camera_name": "top", "rate": 30.0, "publish_compressed": True})
    assert len(got) >= 5 and len(comp) >= 5
    img = image_to_numpy(got[-1])
    assert img.shape == (480, 640, 3) and got[-1].encoding == "rgb8"
    assert got[-1].header.frame_id == "top_optical_frame"
    assert img.std() > 10  # a scene, not a blank frame
    dec = compressed_to_numpy(comp[-1])
    assert dec.shape == (480, 640, 3)


def test_folder_source_resizes_and_loops(tmp_path):
    for i, color in enumerate([(255, 0, 0), (0, 255, 0)]):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((100, 120, 3), color, np.uint8))
    got, _ = run_camera({"source": "folder", "device": str(tmp_path), "width": 64, "height": 48,
                         "encoding": "bgr8", "rate": 50.0})
    assert len(got) >= 4
    first, second = image_to_numpy(got[0]), image_to_numpy(got[1])
    assert first.shape == (48, 64, 3) and got[0].encoding == "bgr8"
    assert tuple(first[0, 0]) == (255, 0, 0) and tuple(second[0, 0]) == (0, 255, 0)  # BGR as written


def test_video_source(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (80, 60))
    for i in range(5):
        writer.write(np.full((60, 80, 3), i * 50, np.uint8))
    writer.release()
    got, _ = run_camera({"source": "video", "device": str(path), "width": 80, "height": 60, "rate": 50.0})
    assert len(got) >= 6  # loops past the 5 frames
    assert image_to_numpy(got[0]).shape == (60, 80, 3)


@pytest.mark.parametrize("params, needle", [
    ({"source": "folder", "device": "/nonexistent"}, "no images"),
    ({"source": "video", "device": "/nonexistent.mp4"}, "video file '/nonexistent.mp4' not found"),
    ({"source": "device", "device": ""}, "needs the 'device' parameter"),
])
def test_bad_sources_fail_at_start(params, needle):
    with pytest.raises(ParameterError, match=needle):
        CameraPublisher(InprocPort("camera", parameters=params, bus=Bus()))
