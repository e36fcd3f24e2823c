"""A folder of still images, read in name order as if they were frames of a video."""

from __future__ import annotations

import time
from pathlib import Path

import cv2

from facelens.edge.sources.base import EndOfStream, Frame, SourceError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


class ImageFolderSource:
    """Each image is one frame, `1 / fps` seconds after the previous one."""

    live = False

    def __init__(self, folder: str | Path, *, fps: float = 0) -> None:
        self.folder = Path(folder)
        self.name = str(self.folder)
        self.period = 1.0 / fps if fps else 0.1
        self._files: list[Path] = []
        self._pos = 0
        self._wall0 = 0.0

    def open(self) -> None:
        if not self.folder.is_dir():
            raise SourceError(f"image folder not found: {self.folder}")
        self._files = sorted(p for p in self.folder.iterdir()
                             if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._files:
            raise SourceError(f"image folder {self.folder} holds no images "
                              f"({', '.join(sorted(IMAGE_SUFFIXES))})")
        self._pos, self._wall0 = 0, time.time()

    def read(self) -> Frame:
        if self._pos >= len(self._files):
            raise EndOfStream(self.name)
        path = self._files[self._pos]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"cannot decode image {path}")
        t = self._pos * self.period
        frame = Frame(image=image, index=self._pos, t=t, wall=self._wall0 + t)
        self._pos += 1
        return frame

    def close(self) -> None:
        self._files = []


def from_uri(uri: str, *, width: int = 640, height: int = 480,
             fps: float = 0, **_stream: object) -> ImageFolderSource | None:
    """The registry's builder: takes a URI that is an existing folder."""
    return ImageFolderSource(uri, fps=fps) if Path(uri).is_dir() else None
