"""Camera sources behind one interface, chosen by the `source.uri` config key.

To add a kind: a module here with a class that has `name`, `live`, `open()`, `read() ->
Frame` and `close()` (sources/base.py), and a `from_uri(uri, *, width, height, fps)` that
returns one when the URI is its own and None otherwise; then one line in SOURCES. Kinds are
asked in order; OpenCV comes last because it takes anything (device index or path, URL, file).
"""

from __future__ import annotations

from collections.abc import Callable

from facelens.edge.sources import images, opencv, picamera
from facelens.edge.sources.base import EndOfStream, Frame, Source, SourceError
from facelens.edge.sources.reader import FrameReader, ReaderStats

__all__ = ["SOURCES", "EndOfStream", "Frame", "FrameReader", "ReaderStats", "Source",
           "SourceError", "open_source"]

SOURCES: dict[str, Callable[..., Source | None]] = {
    "picamera2": picamera.from_uri,
    "folder": images.from_uri,
    "opencv": opencv.from_uri,
}


def open_source(uri: str, *, width: int = 640, height: int = 480, fps: float = 0) -> Source:
    """The source of the first kind that takes `uri`: `picamera2[:N]`, a folder of images,
    or anything OpenCV opens."""
    for from_uri in SOURCES.values():
        source = from_uri(uri, width=width, height=height, fps=fps)
        if source is not None:
            return source
    raise SourceError(f"source.uri {uri!r}: no source kind takes it (kinds: "
                      f"{', '.join(SOURCES)})")
