"""Face landmarks: MediaPipe's face mesh (468 points with depth) for a face in a frame.

Liveness reads eyelids and the face's 3D shape from them; self-blending (workstation) uses
their hull as its mask. The model wants the face as the detector found it, grown by a quarter
each side and squared (as MediaPipe crops it); points come back in the frame's pixels, depth
in the same units as x (MediaPipe's convention: larger is further from the camera).
"""

from __future__ import annotations

import logging
import time

import cv2
import numpy as np

from facelens.edge.contract import preprocess
from facelens.edge.detect.base import Box
from facelens.edge.runtime.interpreter import TFLiteModel

log = logging.getLogger(__name__)
#: How much of the face's size is added on each side before the square crop.
GROW = 0.25


class FaceLandmarker:
    def __init__(self, model: TFLiteModel) -> None:
        self.model = model
        outs = model.output_details
        self._points = max(range(len(outs)), key=lambda i: int(np.prod(outs[i]["shape"])))
        self._flag = 1 - self._points if len(outs) == 2 else None
        self.last_latency_ms = 0.0

    def describe(self) -> str:
        return f"{self.model.manifest.name} on {self.model.backend}"

    def points(self, face: np.ndarray) -> np.ndarray | None:
        """468×2 (x, y) in the crop's pixels, or None when the model sees no face in it."""
        found = self._run(face)
        if found is None:
            return None
        h, w = face.shape[:2]
        spec = self.model.manifest.input
        return found[:, :2] * np.array([w / spec.width, h / spec.height], np.float32)

    def in_frame(self, image: np.ndarray, box: Box) -> np.ndarray | None:
        """468×3 (x, y, depth) in the frame's pixels for the face in `box`, or None."""
        x1, y1, x2, y2 = box
        side = max(x2 - x1, y2 - y1) * (1 + 2 * GROW)
        x0, y0 = (x1 + x2 - side) / 2, (y1 + y2 - side) / 2
        spec = self.model.manifest.input
        k = spec.width / side
        warp = np.array([[k, 0, -x0 * k], [0, spec.height / side, -y0 * spec.height / side]],
                        np.float32)
        face = cv2.warpAffine(image, warp, (spec.width, spec.height),
                              borderMode=cv2.BORDER_REPLICATE)
        found = self._run(face)
        if found is None:
            return None
        found *= side / spec.width
        found[:, 0] += x0
        found[:, 1] += y0
        return found

    def _run(self, face: np.ndarray) -> np.ndarray | None:
        t0 = time.perf_counter()
        outs = self.model.run(preprocess(face, self.model.manifest.input,
                                         self.model.quantization))
        self.last_latency_ms = (time.perf_counter() - t0) * 1000
        if self._flag is not None and float(np.ravel(outs[self._flag])[0]) < 0:
            return None
        return np.asarray(outs[self._points], np.float32).reshape(-1, 3).copy()
