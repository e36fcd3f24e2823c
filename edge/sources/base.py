"""What every camera source is: something that opens, yields BGR frames, and closes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from facelens.edge.errors import FaceLensError


class SourceError(FaceLensError, RuntimeError):
    """A source cannot be opened or read; the message names the source."""

    exit_code = 4
    kind = "source error"


class EndOfStream(Exception):
    """A finite source (file, folder) has no more frames."""


@dataclass(frozen=True)
class Frame:
    """One picture from a source.

    `t` is seconds on the source's own clock (a video file's position, or the monotonic clock
    for a live camera): the tracker measures time with it, so a file is processed the same way
    however fast the machine is. `wall` is the Unix time the frame stands for, for events.
    """

    image: np.ndarray  # H×W×3 uint8, BGR (OpenCV order)
    index: int
    t: float
    wall: float


class Source(Protocol):
    """A camera. `live` sources drop frames when processing is slower than the camera."""

    name: str
    live: bool

    def open(self) -> None: ...

    def read(self) -> Frame:
        """Return the next frame; raise EndOfStream at the end or SourceError on failure."""
        ...

    def close(self) -> None: ...
