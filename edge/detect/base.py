"""What a face detector returns, and the box arithmetic every stage shares."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in frame pixels


@dataclass(frozen=True)
class Detection:
    """A face in frame coordinates. `score` is the detector's confidence in [0, 1] (Haar has
    no calibrated confidence and reports 1.0). `keypoints` are BlazeFace's six landmarks:
    right eye, left eye, nose tip, mouth, right ear tragion, left ear tragion."""

    box: Box
    score: float
    keypoints: tuple[tuple[float, float], ...] = field(default=())

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


class Detector(Protocol):
    name: str
    backend: str
    last_latency_ms: float
    #: Model runs (windows, tiles, regions) the last call made.
    last_runs: int

    def detect(self, image: np.ndarray, tiles: tuple[int, int] | None = None,
               where: Sequence[Box] | None = None) -> list[Detection]:
        """Faces in an H×W×3 BGR frame: a full scan. `tiles` (columns, rows) is a camera's
        own grid where it differs from the detector's (one detector serves every camera);
        with `where`, only the tiles that overlap one of these boxes run (the whole frame
        always does)."""
        ...

    def scan_tiles(self, frame_w: int, frame_h: int,
                   tiles: tuple[int, int] | None = None) -> list[Box]:
        """The windows a full scan runs on besides the whole frame (the live view draws
        them); none for a detector that scans the frame whole."""
        ...

    def detect_regions(self, image: np.ndarray, regions: Sequence[Box]) -> list[Detection]:
        """Faces in these regions of the frame (frame pixels), in frame coordinates."""
        ...


def centre(a: Box) -> tuple[float, float]:
    return ((a[0] + a[2]) / 2, (a[1] + a[3]) / 2)


def area(a: Box) -> float:
    return max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])


def intersection(a: Box, b: Box) -> float:
    """The area two boxes share (0 when apart)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy


def iou(a: Box, b: Box) -> float:
    inter = intersection(a, b)
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def inside(a: Box, b: Box, slack: float = 0.9) -> bool:
    """Whether at least `slack` of box a lies inside box b."""
    return area(a) > 0 and intersection(a, b) >= slack * area(a)


def overlaps(a: Box, b: Box) -> bool:
    """Whether the boxes share any area (touching edges do not)."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of N×4 and M×4 box arrays."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def crop_box(box: Box, margin: float, frame_w: int, frame_h: int) -> tuple[int, int, int, int]:
    """The square region classifiers see: the box grown by `margin` of its size on each side,
    squared around its centre, then clamped to the frame (integer pixels, never empty)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = max(1, round(max(box[2] - box[0], box[3] - box[1]) * (1 + 2 * margin)))
    x1, y1 = math.floor(cx - side / 2 + 0.5), math.floor(cy - side / 2 + 0.5)
    x2, y2 = x1 + side, y1 + side
    x1, y1 = min(max(x1, 0), frame_w - 1), min(max(y1, 0), frame_h - 1)
    x2, y2 = max(min(x2, frame_w), x1 + 1), max(min(y2, frame_h), y1 + 1)
    return x1, y1, x2, y2


def crop(image: np.ndarray, box: Box, margin: float) -> np.ndarray:
    x1, y1, x2, y2 = crop_box(box, margin, image.shape[1], image.shape[0])
    return image[y1:y2, x1:x2]
