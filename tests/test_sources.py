"""Camera sources: real video decoding, image folders, reconnects, newest-frame policy."""

from __future__ import annotations

import itertools
import sys
import threading
import time
import types
from typing import ClassVar

import cv2
import numpy as np
import pytest

from demo import scenes
from facelens.edge.sources import FrameReader, SourceError, open_source
from facelens.edge.sources.images import ImageFolderSource
from facelens.edge.sources.opencv import OpenCVSource
from facelens.edge.sources.picamera import PiCameraSource


def drain(reader: FrameReader, limit: int = 10_000) -> list:
    frames = []
    while len(frames) < limit:
        f = reader.get(timeout=2.0)
        if f is None:
            break
        frames.append(f)
    return frames


def test_video_file_gives_every_frame_with_media_time(astronaut_clip):
    reader = FrameReader(open_source(str(astronaut_clip.path)))
    reader.start()
    frames = drain(reader)
    reader.close()
    assert len(frames) == astronaut_clip.total_frames
    assert frames[0].image.shape == (480, 640, 3) and frames[0].image.dtype == np.uint8
    assert [f.index for f in frames] == list(range(len(frames)))
    assert frames[10].t == pytest.approx(1.0, abs=1e-6)  # 10 fps
    assert reader.ended and reader.stats.frames_dropped == 0


def test_looping_file_keeps_time_moving_forward(astronaut_clip):
    reader = FrameReader(open_source(str(astronaut_clip.path)), loop=True)
    reader.start()
    frames = drain(reader, limit=astronaut_clip.total_frames + 5)
    reader.close()
    ts = [f.t for f in frames]
    assert len(frames) == astronaut_clip.total_frames + 5
    assert all(b > a for a, b in itertools.pairwise(ts))


def test_latest_only_drops_stale_frames_and_counts_them(astronaut_clip):
    """A consumer slower than the source sees the newest frames, and the gap is counted."""
    reader = FrameReader(open_source(str(astronaut_clip.path)), latest_only=True)
    reader.start()
    seen = []
    while (f := reader.get(timeout=2.0)) is not None:
        seen.append(f.index)
        time.sleep(0.02)  # slower than decoding
    reader.close()
    assert reader.stats.frames_read == astronaut_clip.total_frames
    assert reader.stats.frames_dropped > 0
    assert len(seen) + reader.stats.frames_dropped == astronaut_clip.total_frames
    assert seen == sorted(seen)


def test_image_folder_is_read_in_name_order(tmp_path):
    for i, shade in enumerate((10, 200, 90)):
        cv2.imwrite(str(tmp_path / f"img{i}.png"), np.full((48, 64, 3), shade, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    src = open_source(str(tmp_path), fps=5)
    assert isinstance(src, ImageFolderSource)
    reader = FrameReader(src)
    reader.start()
    frames = drain(reader)
    assert [int(f.image[0, 0, 0]) for f in frames] == [10, 200, 90]
    assert [f.t for f in frames] == pytest.approx([0.0, 0.2, 0.4])


@pytest.mark.parametrize("uri,needle", [
    ("/nonexistent/video.mp4", "video file not found: /nonexistent/video.mp4"),
])
def test_missing_file_is_an_error_at_start(uri, needle):
    reader = FrameReader(open_source(uri))
    with pytest.raises(SourceError, match=needle):
        reader.start()


def test_undecodable_file_is_an_error_at_start(tmp_path):
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(SourceError, match="cannot open video source .*clip.mp4"):
        FrameReader(open_source(str(bad))).start()


def test_empty_image_folder_is_an_error(tmp_path):
    with pytest.raises(SourceError, match="holds no images"):
        FrameReader(open_source(str(tmp_path))).start()


def test_uri_kinds():
    assert isinstance(open_source("0"), OpenCVSource) and open_source("0").live
    assert open_source("rtsp://user:secret@cam/stream").name == "cam/stream"  # no password
    assert isinstance(open_source("picamera2:1"), PiCameraSource)
    with pytest.raises(SourceError, match="picamera2:N"):
        open_source("picamera2:front")


# -- picamera2: the camera cannot exist here, so a stand-in with picamera2's interface ------
class FakePicamera2:
    """Implements the part of picamera2.Picamera2 the source uses, over real photo frames;
    `fail_after` makes capture_array raise like a camera that was unplugged."""

    instances: ClassVar[list[FakePicamera2]] = []
    fail_after: ClassVar[int | None] = None

    def __init__(self, camera_num: int = 0) -> None:
        self.camera_num = camera_num
        self.config = None
        self.started = self.closed = False
        self.captures = 0
        FakePicamera2.instances.append(self)

    def create_video_configuration(self, main, controls=None):
        return {"main": main, "controls": controls or {}}

    def configure(self, config) -> None:
        self.config = config

    def start(self) -> None:
        self.started = True

    def capture_array(self, name: str = "main") -> np.ndarray:
        if FakePicamera2.fail_after is not None and self.captures >= FakePicamera2.fail_after:
            raise RuntimeError("Camera frontend has timed out!")
        self.captures += 1
        w, h = self.config["main"]["size"]
        frame = scenes.background(w, h)
        return np.dstack([frame, np.full((h, w), 255, np.uint8)])  # XRGB8888-like 4 channels

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_picamera2(monkeypatch):
    FakePicamera2.instances = []
    FakePicamera2.fail_after = None
    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=FakePicamera2))
    return FakePicamera2


def test_picamera2_source_configures_bgr_frames_of_the_asked_size(fake_picamera2):
    src = open_source("picamera2:1", width=320, height=240, fps=15)
    src.open()
    frame = src.read()
    src.close()
    cam = fake_picamera2.instances[0]
    assert cam.camera_num == 1
    assert cam.config["main"] == {"size": (320, 240), "format": "RGB888"}
    assert cam.config["controls"] == {"FrameRate": 15}
    assert frame.image.shape == (240, 320, 3) and frame.image.flags["C_CONTIGUOUS"]
    assert cam.closed


def test_a_failing_camera_is_reopened_with_backoff(fake_picamera2):
    fake_picamera2.fail_after = 3
    stop = threading.Event()
    reader = FrameReader(open_source("picamera2", width=160, height=120), latest_only=False,
                         reconnect_min_s=0.01, reconnect_max_s=0.04, stop=stop)
    reader.start()
    frames = [reader.get() for _ in range(7)]
    reader.close()
    assert all(f is not None for f in frames)
    assert reader.stats.reconnects == 2  # two cameras died after three frames each
    assert len(fake_picamera2.instances) == 3
    assert all(cam.closed for cam in fake_picamera2.instances)


def test_picamera2_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(SourceError, match="python3-picamera2 .* --system-site-packages"):
        PiCameraSource().open()


def test_live_source_unavailable_at_start_is_retried_not_fatal(fake_picamera2, monkeypatch):
    calls = []

    def broken(num=0):
        calls.append(num)
        if len(calls) < 3:
            raise RuntimeError("no cameras available")
        return FakePicamera2(num)

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=broken))
    reader = FrameReader(open_source("picamera2", width=160, height=120), latest_only=True,
                         reconnect_min_s=0.01, reconnect_max_s=0.02)
    reader.start()
    frame = reader.get(timeout=3.0)
    reader.close()
    assert frame is not None and len(calls) == 3
