"""USB cameras, RTSP/HTTP streams and video files, through OpenCV's VideoCapture."""

from __future__ import annotations

import time
from pathlib import Path

import cv2

from facelens.edge.sources.base import EndOfStream, Frame, SourceError


class OpenCVSource:
    """`uri` is a device index ("0"), a device path (/dev/video0), a stream URL or a file."""

    def __init__(self, uri: str, *, width: int = 640, height: int = 480, fps: float = 0) -> None:
        self.uri = uri
        self.width, self.height, self.fps = width, height, fps
        self.is_file = not (uri.isdigit() or uri.startswith("/dev/") or "://" in uri)
        self.live = not self.is_file
        self.name = uri if "://" not in uri else uri.split("@")[-1]  # never log credentials
        self._cap: cv2.VideoCapture | None = None
        self._index = 0
        self._wall0 = 0.0

    def open(self) -> None:
        if self.is_file and not Path(self.uri).is_file():
            raise SourceError(f"video file not found: {self.uri}")
        target: int | str = int(self.uri) if self.uri.isdigit() else self.uri
        cap = cv2.VideoCapture(target)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open video source {self.name!r}"
                              + (" (not a video OpenCV can decode)" if self.is_file else ""))
        if self.live:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            if self.fps:
                cap.set(cv2.CAP_PROP_FPS, self.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # we want the newest frame, not a queue
        self._cap, self._index, self._wall0 = cap, 0, time.time()

    def read(self) -> Frame:
        if self._cap is None:
            raise SourceError(f"source {self.name!r} is not open")
        ok, image = self._cap.read()
        if not ok or image is None:
            if self.is_file:
                raise EndOfStream(self.uri)
            raise SourceError(f"source {self.name!r} stopped delivering frames")
        if self.is_file:
            t = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            wall = self._wall0 + t
        else:
            t, wall = time.monotonic(), time.time()
        frame = Frame(image=image, index=self._index, t=t, wall=wall)
        self._index += 1
        return frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def from_uri(uri: str, *, width: int = 640, height: int = 480, fps: float = 0) -> OpenCVSource:
    """The registry's builder: takes anything (the last kind asked)."""
    return OpenCVSource(uri, width=width, height=height, fps=fps)
