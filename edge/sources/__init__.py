"""Camera sources behind one interface, chosen by the `source.uri` config key.

To add a kind: a module here with a class that has `name`, `live`, `open()`, `read() ->
Frame` and `close()` (sources/base.py), and a `from_uri(uri, *, width, height, fps,
**stream)` that returns one when the URI is its own and None otherwise (`stream`: stall_s,
open_timeout_s, rtsp_transport, for kinds that have a network side); then one line in
SOURCES. Kinds are asked in order; OpenCV comes last because it takes anything (device index
or path, URL, file).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from facelens.edge.config import SourceConfig
from facelens.edge.sources import images, opencv, picamera
from facelens.edge.sources.base import EndOfStream, Frame, Source, SourceError
from facelens.edge.sources.reader import FrameReader, ReaderStats

__all__ = ["SOURCES", "EndOfStream", "Frame", "FrameReader", "ReaderStats", "Source",
           "SourceError", "camera_source", "open_camera", "open_source"]

SOURCES: dict[str, Callable[..., Source | None]] = {
    "picamera2": picamera.from_uri,
    "folder": images.from_uri,
    "opencv": opencv.from_uri,
}


def open_source(uri: str, *, width: int = 640, height: int = 480, fps: float = 0,
                **stream: Any) -> Source:
    """The source of the first kind that takes `uri`: `picamera2[:N]`, a folder of images,
    or anything OpenCV opens."""
    for from_uri in SOURCES.values():
        source = from_uri(uri, width=width, height=height, fps=fps, **stream)
        if source is not None:
            return source
    raise SourceError(f"source.uri {uri!r}: no source kind takes it (kinds: "
                      f"{', '.join(SOURCES)})")


def camera_source(src: SourceConfig) -> Source:
    """The configured camera (not opened): the one way every command turns `[source]` into a
    source, with its size, rate, timeouts and transport."""
    return open_source(src.uri, width=src.width, height=src.height, fps=src.fps,
                       stall_s=src.stall_s, open_timeout_s=src.open_timeout_s,
                       rtsp_transport=src.rtsp_transport)


def open_camera(src: SourceConfig, stop: threading.Event | None = None) -> FrameReader:
    """The configured camera behind its reader, which reopens it (not started yet)."""
    return FrameReader(camera_source(src), latest_only=src.latest_only, loop=src.loop,
                       reconnect_min_s=src.reconnect_min_s, reconnect_max_s=src.reconnect_max_s,
                       stall_s=src.stall_s, stop=stop)
