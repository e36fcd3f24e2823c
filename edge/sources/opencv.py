"""USB cameras, RTSP/HTTP streams and video files, through OpenCV's VideoCapture.

Network streams are opened through FFmpeg with open and read timeouts, so a camera that
freezes with its connection still open makes `read()` fail after `read_timeout_s` instead of
OpenCV's own 30 s, and the reader reopens it. RTSP goes over TCP unless asked for UDP, and
streams are probed for 1 s, not FFmpeg's 5 s: FFmpeg reads these options from
OPENCV_FFMPEG_CAPTURE_OPTIONS at each open, so the variable is set just before.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import cv2

from facelens.edge.sources.base import EndOfStream, Frame, SourceError

# A camera that stays away must not fill the journal: FFmpeg's own "Connection refused" and
# OpenCV's warnings would print two lines per retry. FaceLens logs each change once itself.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # read when FFmpeg is first used
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

#: OpenCV reads FFmpeg's capture options from the environment at open time.
FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_ENV_LOCK = threading.Lock()
#: FFmpeg probes a stream for 5 s by default before the first frame: every reopen would cost
#: that. One second (as Frigate's RTSP presets use) is enough to find an H.264 stream's size.
STREAM_PROBE = "analyzeduration;1000000|probesize;1000000"


class OpenCVSource:
    """`uri` is a device index ("0"), a device path (/dev/video0), a stream URL or a file."""

    def __init__(self, uri: str, *, width: int = 640, height: int = 480, fps: float = 0,
                 read_timeout_s: float = 5.0, open_timeout_s: float = 10.0,
                 rtsp_transport: str = "tcp") -> None:
        self.uri = uri
        self.width, self.height, self.fps = width, height, fps
        self.is_file = not (uri.isdigit() or uri.startswith("/dev/") or "://" in uri)
        self.is_stream = "://" in uri
        self.live = not self.is_file
        self.read_timeout_s, self.open_timeout_s = read_timeout_s, open_timeout_s
        self.rtsp_transport = rtsp_transport
        self.name = uri if "://" not in uri else uri.split("@")[-1]  # never log credentials
        self._cap: cv2.VideoCapture | None = None
        self._index = 0
        self._wall0 = 0.0

    def open(self) -> None:
        if self.is_file and not Path(self.uri).is_file():
            raise SourceError(f"video file not found: {self.uri}")
        target: int | str = int(self.uri) if self.uri.isdigit() else self.uri
        cap = self._open_stream() if self.is_stream else cv2.VideoCapture(target)
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

    def _open_stream(self) -> cv2.VideoCapture:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout_s * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout_s * 1000)]
        with _ENV_LOCK:
            saved = os.environ.get(FFMPEG_OPTIONS_ENV)
            options = STREAM_PROBE + (f"|rtsp_transport;{self.rtsp_transport}"
                                      if self.uri.startswith("rtsp") else "")
            os.environ[FFMPEG_OPTIONS_ENV] = options
            try:
                return cv2.VideoCapture(self.uri, cv2.CAP_FFMPEG, params)
            finally:
                if saved is None:
                    os.environ.pop(FFMPEG_OPTIONS_ENV, None)
                else:
                    os.environ[FFMPEG_OPTIONS_ENV] = saved

    def read(self) -> Frame:
        if self._cap is None:
            raise SourceError(f"source {self.name!r} is not open")
        began = time.monotonic()
        ok, image = self._cap.read()
        if ok and self.is_stream and self._index > 0 \
                and time.monotonic() - began >= 0.9 * self.read_timeout_s:
            # FFmpeg's decoder threads hold a frame or two back: after a read timed out, the
            # reads that follow flush those old frames out one timeout each. A frame that
            # took the whole timeout to come is a stall, not a picture of now. (The first
            # frame after opening may take long: the stream starts at its next key frame.)
            ok = False
        if not ok or image is None:
            if self.is_file:
                raise EndOfStream(self.uri)
            raise SourceError(f"source {self.name!r} stopped delivering frames"
                              + (f" (none within {self.read_timeout_s:g} s)"
                                 if self.is_stream else ""))
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


def from_uri(uri: str, *, width: int = 640, height: int = 480, fps: float = 0,
             stall_s: float = 5.0, open_timeout_s: float = 10.0,
             rtsp_transport: str = "tcp") -> OpenCVSource:
    """The registry's builder: takes anything (the last kind asked)."""
    return OpenCVSource(uri, width=width, height=height, fps=fps, read_timeout_s=stall_s,
                        open_timeout_s=open_timeout_s, rtsp_transport=rtsp_transport)
