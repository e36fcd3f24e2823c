"""OpenCV's Haar cascade: the detector that needs no model file.

Measured here it is ~40× slower than BlazeFace at 640 px and misses tilted and downcast faces,
so it is only the fallback for a device without the stock models.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from facelens.edge.detect.base import Box, Detection, iou

if TYPE_CHECKING:
    from facelens.edge.config import Config

CASCADE = "haarcascade_frontalface_default.xml"


class HaarDetector:
    name = "haar"
    backend = f"opencv {cv2.__version__} / cpu"

    def __init__(self, *, min_face_px: int = 24) -> None:
        path = Path(cv2.data.haarcascades) / CASCADE  # type: ignore[attr-defined]
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise FileNotFoundError(f"Haar cascade not found or unreadable: {path} "
                                    "(opencv-python-headless 5.x ships none; use <5)")
        self.min_face_px = max(min_face_px, 20)
        self.last_latency_ms = 0.0
        self.last_runs = 0

    def scan_tiles(self, frame_w: int, frame_h: int,
                   tiles: tuple[int, int] | None = None) -> list[Box]:
        """None: the cascade scans the whole frame at every scale."""
        return []

    def detect(self, image: np.ndarray, tiles: tuple[int, int] | None = None,
               where: Sequence[Box] | None = None) -> list[Detection]:
        """The whole frame at every scale (no tiles: `tiles` and `where` do not apply)."""
        h, w = image.shape[:2]
        return self.detect_regions(image, [(0, 0, w, h)])

    def detect_regions(self, image: np.ndarray, regions: Sequence[Box]) -> list[Detection]:
        """The cascade on each region (at the frame's own scale), duplicates merged."""
        t0 = time.perf_counter()
        self.last_runs = len(regions)
        faces: list[Detection] = []
        for rx1, ry1, rx2, ry2 in regions:
            x0, y0 = max(0, int(rx1)), max(0, int(ry1))
            part = image[y0:int(ry2), x0:int(rx2)]
            if min(part.shape[:2]) < self.min_face_px:
                continue
            grey = cv2.equalizeHist(cv2.cvtColor(part, cv2.COLOR_BGR2GRAY))
            rects = self._cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5,
                                                   minSize=(self.min_face_px, self.min_face_px))
            for x, y, w, h in rects:
                box = (float(x + x0), float(y + y0), float(x + x0 + w), float(y + y0 + h))
                if all(iou(box, f.box) < 0.3 for f in faces):
                    faces.append(Detection(box=box, score=1.0))
        self.last_latency_ms = (time.perf_counter() - t0) * 1000
        return faces


def build(cfg: Config) -> HaarDetector:
    """The registry's builder: needs no model file, only the smallest face size."""
    return HaarDetector(min_face_px=cfg.detector.min_face_px)
