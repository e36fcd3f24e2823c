"""The Raspberry Pi camera through picamera2.

picamera2 needs libcamera's Python bindings, which only Raspberry Pi OS ships (apt package
python3-picamera2), so it is imported when this source opens, never at module import.
"""

from __future__ import annotations

import importlib
import time

import numpy as np

from facelens.edge.sources.base import Frame, SourceError


class PiCameraSource:
    """`picamera2` or `picamera2:N` (camera number N)."""

    live = True

    def __init__(self, camera_num: int = 0, *, width: int = 640, height: int = 480,
                 fps: float = 0) -> None:
        self.camera_num = camera_num
        self.width, self.height, self.fps = width, height, fps
        self.name = f"picamera2:{camera_num}"
        self._cam = None
        self._index = 0

    def open(self) -> None:
        try:
            module = importlib.import_module("picamera2")
        except ImportError as exc:
            raise SourceError(
                f"source {self.name!r} needs picamera2 ({exc}); on Raspberry Pi OS install "
                "python3-picamera2 with apt and create the venv with --system-site-packages"
            ) from exc
        try:
            cam = module.Picamera2(self.camera_num)
            controls = {"FrameRate": self.fps} if self.fps else {}
            # libcamera's "RGB888" is B, G, R in memory: exactly OpenCV's order.
            cam.configure(cam.create_video_configuration(
                main={"size": (self.width, self.height), "format": "RGB888"},
                controls=controls))
            cam.start()
        except Exception as exc:  # libcamera raises RuntimeError, IndexError, …
            raise SourceError(f"cannot open camera {self.name!r}: {exc}") from exc
        self._cam, self._index = cam, 0

    def read(self) -> Frame:
        if self._cam is None:
            raise SourceError(f"source {self.name!r} is not open")
        try:
            image = self._cam.capture_array("main")
        except Exception as exc:
            raise SourceError(f"camera {self.name!r} failed: {exc}") from exc
        image = np.ascontiguousarray(image[:, :, :3])
        frame = Frame(image=image, index=self._index, t=time.monotonic(), wall=time.time())
        self._index += 1
        return frame

    def close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
                self._cam.close()
            finally:
                self._cam = None


def from_uri(uri: str, *, width: int = 640, height: int = 480,
             fps: float = 0, **_stream: object) -> PiCameraSource | None:
    """The registry's builder: takes `picamera2` and `picamera2:N`."""
    if uri != "picamera2" and not uri.startswith("picamera2:"):
        return None
    num = uri.partition(":")[2] or "0"
    if not num.isdigit():
        raise SourceError(f"source.uri {uri!r}: expected picamera2 or picamera2:N")
    return PiCameraSource(int(num), width=width, height=height, fps=fps)
