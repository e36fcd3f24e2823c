"""The frame economy: where the face detector looks in each frame.

Running BlazeFace over the whole frame and six tiles costs seven model runs a frame, whether
anyone is there or not. Instead: a full scan at start, every `scan.full_scan_interval_s` and
whenever the motion detector re-learnt its background (the safety net for faces that arrived
without motion it could see); in between, only square regions around motion and around the
faces being tracked, each small enough that a face in it lands where the model resolves it.
A face that stands still is re-detected in its own region every `scan.track_refresh_s`, and so
is motion that stays where a scan found no face (a ghost, a curtain, a screen). When nothing
moved and no face was tracked since the last full scan, the next waits
`scan.idle_full_scan_interval_s`. An empty, still room costs one small image difference a
frame and, every minute, one full scan.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from facelens.edge.camera.motion import Motion, MotionDetector
from facelens.edge.config import MotionConfig, ScanConfig
from facelens.edge.detect.base import Box, Detection, centre, inside, iou, overlaps

#: The smallest region: a tiny motion blob still gets enough context for a whole face.
MIN_REGION_PX = 96
#: Motion this close (IoU) to a spot scanned empty is the same thing still moving there.
SAME_SPOT_IOU = 0.7
#: Motion mostly inside a tracked face's region (scanned, or its face followed) is that person
#: moving: the region already looks there.
COVERED_SHARE = 0.9


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
    """One frame's decision: a full scan (of every tile, or of those `where` things
    happened), or these regions (none: no model runs), and the faces followed without the
    detector (by track id)."""

    full: bool
    regions: list[Box]
    motion: Motion | None
    followed: list[tuple[str, Detection]] = field(default_factory=list)
    #: A full scan's tiles only where something moved or a face was tracked since the last
    #: (None: every tile).
    where: list[Box] | None = None


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
    whole frame besides its tiles. A blob taller than wide is a person (people one above
    another are rare): instead of the grid, only its top, as deep as it is wide, where the
    face is; the square over all of it and the full scan are the safety net."""
    w, h = box[2] - box[0], box[3] - box[1]
    margin = 0.25 * max(w, h) + 8
    x1, y1 = box[0] - margin, box[1] - margin
    x2, y2 = box[2] + margin, box[3] + margin
    side = max(x2 - x1, y2 - y1, MIN_REGION_PX)
    if side <= max_side:
        return [square((x1 + x2) / 2, (y1 + y2) / 2, side, frame_w, frame_h)]
    out = [square((x1 + x2) / 2, (y1 + y2) / 2, side, frame_w, frame_h)]
    if h > w:  # a tall blob: a face is at its top, as deep as the blob is wide
        return out + motion_regions((box[0], box[1], box[2], box[1] + w), max_side,
                                    frame_w, frame_h)
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
        self._last_full = -math.inf
        self._last_complete = -math.inf  # the last full scan of every tile
        self._touched: list[Box] = []  # motion and faces since the last full scan
        self._refreshed: dict[str, float] = {}
        # The last frame's motion boxes and the regions scanned for each; motion boxes whose
        # regions gave no face, and when they were scanned.
        self._scanned: tuple[float, list[tuple[Box, list[Box]]]] = (0.0, [])
        self._empty: list[tuple[Box, float]] = []

    def plan(self, image: np.ndarray, t: float, tracks: Sequence[TrackHint],
             follow: Callable[[TrackHint], Detection | None] | None = None) -> ScanPlan:
        """Decide this frame's scan from its motion and the tracker's last faces. `follow`
        looks for a moving confirmed face without the detector (edge.follow)."""
        motion = self.motion.update(image) if self.motion is not None else None
        for box in [*(motion.boxes if motion is not None else []), *(tr.box for tr in tracks)]:
            if not any(inside(box, k) for k in self._touched):
                self._touched.append(box)
        full = self._full_scan(motion, t)
        if full is not None:
            self._refreshed = {tr.track_id: t for tr in tracks}
            self._scanned, self._empty = (t, []), []
            return full
        assert motion is not None
        h, w = image.shape[:2]
        regions: list[Box] = []
        followed: list[tuple[str, Detection]] = []
        covered: list[Box] = []  # tracks' regions: scanned, or their face followed
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
                    covered.append(area)
                    continue
            self._refreshed[tr.track_id] = t
            regions.append(area)
            covered.append(area)
        self._learn_empty(t, tracks)
        scanned: list[tuple[Box, list[Box]]] = []
        for box in motion.boxes:
            if any(inside(box, c, COVERED_SHARE) for c in covered):
                continue  # that track's face (and its shoulders) moving: seen to already
            if any(iou(box, spot) >= SAME_SPOT_IOU for spot, _ in self._empty):
                continue  # still moving where a scan just found no face: at its refresh
            around = motion_regions(box, self.cfg.max_region_px, w, h)
            scanned.append((box, around))
            regions += around
        self._scanned = (t, scanned)
        self._refreshed = {k: v for k, v in self._refreshed.items() if k in live}
        return ScanPlan(False, merge(regions), motion, followed)

    def _full_scan(self, motion: Motion | None, t: float) -> ScanPlan | None:
        """Every tile at start, without motion, after the background was re-learnt and
        every `idle_full_scan_interval_s`; every `full_scan_interval_s` in between, the tiles
        where something moved or a face was tracked since the last full scan (the rest of
        the frame is as the last one saw it), or none when nothing was."""
        complete = (motion is None or motion.recalibrated
                    or t >= self._last_complete + self.cfg.idle_full_scan_interval_s)
        if not complete and (not self._touched
                             or t < self._last_full + self.cfg.full_scan_interval_s):
            return None
        where = None if complete else merge(self._touched)
        self._last_full, self._touched = t, []
        if complete:
            self._last_complete = t
        return ScanPlan(True, [], motion, where=where)

    def _learn_empty(self, t: float, tracks: Sequence[TrackHint]) -> None:
        """The last frame's motion whose regions hold no face found now (a track not seen is
        no face) was scanned in vain: what keeps moving there waits for `track_refresh_s`,
        like a face that stands still."""
        then, scanned = self._scanned
        self._empty = [(b, ts) for b, ts in self._empty if t - ts < self.cfg.track_refresh_s]
        for box, around in scanned:
            if not any(tr.seen and overlaps(tr.box, r) for tr in tracks for r in around):
                self._empty.append((box, then))

    def _track_region(self, box: Box, w: int, h: int) -> Box:
        size = max(box[2] - box[0], box[3] - box[1])
        side = max(size * self.cfg.track_region_scale, MIN_REGION_PX)
        return square(*centre(box), side, w, h)
