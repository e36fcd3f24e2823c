"""OpenCV's Haar cascade: the detector that needs no model file.

Measured here it is ~40× slower than BlazeFace at 640 px and misses tilted and downcast faces,
so it is only the fallback for a device without the stock models.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from facelens.edge.detect.base import Detection

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

    def detect(self, image: np.ndarray) -> list[Detection]:
        t0 = time.perf_counter()
        grey = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        rects = self._cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5,
                                               minSize=(self.min_face_px, self.min_face_px))
        self.last_latency_ms = (time.perf_counter() - t0) * 1000
        return [Detection(box=(float(x), float(y), float(x + w), float(y + h)), score=1.0)
                for x, y, w, h in rects]


def build(cfg: Config) -> HaarDetector:
    """The registry's builder: needs no model file, only the smallest face size."""
    return HaarDetector(min_face_px=cfg.detector.min_face_px)
