"""The frame economy: where the face detector looks in each frame.

Running BlazeFace over the whole frame and six tiles costs seven model runs a frame, whether
anyone is there or not. Instead: a full scan at start, every `scan.full_scan_interval_s` and
whenever the motion detector re-learnt its background (the safety net for faces that arrived
without motion it could see); in between, only square regions around motion and around the
faces being tracked, each small enough that a face in it lands where the model resolves it.
A face that stands still is re-detected in its own region every `scan.track_refresh_s`. An
empty, still room costs one small image difference a frame and no model run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from facelens.edge.camera.motion import Motion, MotionDetector
from facelens.edge.config import MotionConfig, ScanConfig
from facelens.edge.detect.base import Box, Detection, centre, inside, overlaps

#: The smallest region: a tiny motion blob still gets enough context for a whole face.
MIN_REGION_PX = 96


@dataclass(frozen=True)
class TrackHint:
    """Where the tracker saw a face last: what the next frame's scan should look at."""

    track_id: str
    box: Box
    confirmed: bool
    #: Found in the last frame (a track that was not is either gone or turned away).
    seen: bool = True


@dataclass(frozen=True)
class ScanPlan:
    """One frame's decision: a full scan, or these regions (none: no model runs), and the
    faces followed without the detector (by track id)."""

    full: bool
    regions: list[Box]
    motion: Motion | None
    followed: list[tuple[str, Detection]] = field(default_factory=list)


def square(cx: float, cy: float, side: float, frame_w: int, frame_h: int) -> Box:
    """A square of `side` centred near (cx, cy), shifted (not shrunk) to lie in the frame."""
    side = min(side, frame_w, frame_h)
    x0 = min(max(cx - side / 2, 0.0), frame_w - side)
    y0 = min(max(cy - side / 2, 0.0), frame_h - side)
    return (x0, y0, x0 + side, y0 + side)


def motion_regions(box: Box, max_side: int, frame_w: int, frame_h: int) -> list[Box]:
    """Squares covering a motion box with a margin: one when it fits in `max_side`; else one
    square over all of it (for a large face, which a grid square could cut) and a grid of
    `max_side` squares overlapping by a quarter (for small faces) — as a full scan runs the
    whole frame besides its tiles."""
    w, h = box[2] - box[0], box[3] - box[1]
    margin = 0.25 * max(w, h) + 8
    x1, y1 = box[0] - margin, box[1] - margin
    x2, y2 = box[2] + margin, box[3] + margin
    side = max(x2 - x1, y2 - y1, MIN_REGION_PX)
    if side <= max_side:
        return [square((x1 + x2) / 2, (y1 + y2) / 2, side, frame_w, frame_h)]
    out = [square((x1 + x2) / 2, (y1 + y2) / 2, side, frame_w, frame_h)]
    step = 0.75 * max_side
    cols = max(1, math.ceil((x2 - x1 - max_side) / step) + 1)
    rows = max(1, math.ceil((y2 - y1 - max_side) / step) + 1)
    for r in range(rows):
        for c in range(cols):
            cx = x1 + max_side / 2 + (c * (x2 - x1 - max_side) / (cols - 1) if cols > 1 else
                                      (x2 - x1 - max_side) / 2)
            cy = y1 + max_side / 2 + (r * (y2 - y1 - max_side) / (rows - 1) if rows > 1 else
                                      (y2 - y1 - max_side) / 2)
            out.append(square(cx, cy, max_side, frame_w, frame_h))
    return out


def merge(regions: list[Box]) -> list[Box]:
    """Drop regions (nearly) inside another of the same or larger size: one run covers both."""
    kept: list[Box] = []
    for r in sorted(regions, key=lambda b: -(b[2] - b[0])):
        if not any(inside(r, k) for k in kept):
            kept.append(r)
    return kept


class Scanner:
    def __init__(self, scan: ScanConfig, motion: MotionConfig) -> None:
        self.cfg = scan
        self.motion = MotionDetector(motion) if motion.enabled else None
        self._next_full: float | None = None
        self._refreshed: dict[str, float] = {}

    def plan(self, image: np.ndarray, t: float, tracks: Sequence[TrackHint],
             follow: Callable[[TrackHint], Detection | None] | None = None) -> ScanPlan:
        """Decide this frame's scan from its motion and the tracker's last faces. `follow`
        looks for a moving confirmed face without the detector (edge.follow)."""
        motion = self.motion.update(image) if self.motion is not None else None
        if (motion is None or motion.recalibrated or self._next_full is None
                or t >= self._next_full):
            self._next_full = t + self.cfg.full_scan_interval_s
            self._refreshed = {tr.track_id: t for tr in tracks}
            return ScanPlan(True, [], motion)
        h, w = image.shape[:2]
        regions: list[Box] = []
        followed: list[tuple[str, Detection]] = []
        explained: list[Box] = []  # where a followed face's own movement is
        live = set()
        for tr in tracks:
            live.add(tr.track_id)
            moved = any(overlaps(tr.box, m) for m in motion.boxes)
            due = t - self._refreshed.get(tr.track_id, -math.inf) >= self.cfg.track_refresh_s
            area = self._track_region(tr.box, w, h)
            if not tr.seen and not due:
                # Gone, or turned away: let it leave. Any motion there is scanned as motion;
                # its own region only at its refresh.
                continue
            if tr.confirmed and not moved and not due:
                continue
            if tr.confirmed and moved and not due and follow is not None:
                found = follow(tr)
                if found is not None:
                    followed.append((tr.track_id, found))
                    explained.append(area)
                    continue
            self._refreshed[tr.track_id] = t
            regions.append(area)
        for box in motion.boxes:
            if any(inside(box, e) for e in explained):
                continue  # the followed face (and its shoulders) swaying
            regions += motion_regions(box, self.cfg.max_region_px, w, h)
        self._refreshed = {k: v for k, v in self._refreshed.items() if k in live}
        return ScanPlan(False, merge(regions), motion, followed)

    def _track_region(self, box: Box, w: int, h: int) -> Box:
        size = max(box[2] - box[0], box[3] - box[1])
        side = max(size * self.cfg.track_region_scale, MIN_REGION_PX)
        return square(*centre(box), side, w, h)
