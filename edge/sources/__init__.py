"""Camera sources behind one interface, chosen by the `source.uri` config key."""

from __future__ import annotations

from pathlib import Path

from facelens.edge.sources.base import EndOfStream, Frame, Source, SourceError
from facelens.edge.sources.images import ImageFolderSource
from facelens.edge.sources.opencv import OpenCVSource
from facelens.edge.sources.picamera import PiCameraSource
from facelens.edge.sources.reader import FrameReader, ReaderStats

__all__ = ["EndOfStream", "Frame", "FrameReader", "ReaderStats", "Source", "SourceError",
           "open_source"]


def open_source(uri: str, *, width: int = 640, height: int = 480, fps: float = 0) -> Source:
    """Pick the source for a URI: `picamera2[:N]`, a folder of images, or anything OpenCV
    opens (device index or path, rtsp:// or http:// URL, video file)."""
    if uri == "picamera2" or uri.startswith("picamera2:"):
        num = uri.partition(":")[2] or "0"
        if not num.isdigit():
            raise SourceError(f"source.uri {uri!r}: expected picamera2 or picamera2:N")
        return PiCameraSource(int(num), width=width, height=height, fps=fps)
    if Path(uri).is_dir():
        return ImageFolderSource(uri, fps=fps)
    return OpenCVSource(uri, width=width, height=height, fps=fps)
