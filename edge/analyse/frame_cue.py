"""A frame around the face: the straight sides of a print or a phone that move with it.

A photo or a screen held up to a camera has edges: the sheet's or the bezel's, and the
picture's own inside them. They are straight, they lie around the face on its left, right,
top or bottom, and, unlike a door frame behind a person, they move *with* the face: as the
hand sways, the face's distance to each of them stays while their place in the frame changes.
A live face's surroundings do the opposite (a wall's edges stay put as the head moves), and a
live face mostly has no straight sides around it at all.

So each sample finds, per side, the nearest long straight edge around the face (Canny and a
probabilistic Hough transform on the face's surroundings, scaled to a fixed size), and each
framed sample is compared, side by side, with the earlier one whose face was farthest away: a
side whose offset from the face stayed while its place in the frame moved is *rigid* (a
frame), one whose place stayed while the face moved is *static* (the room). Only motion the
comparison can see counts: a face that does not move against its surroundings says nothing,
which is the honest answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: The surroundings searched, in face widths beyond the face box on each side.
REACH = 1.8
#: The surroundings are scaled to this many pixels across (edges at one scale, fixed cost).
WORK_PX = 256
#: A side is a straight edge at least this long (face widths), within 20° of its axis.
MIN_LENGTH = 0.6
MAX_TILT = np.tan(np.radians(20))
#: Canny's hysteresis thresholds: a sheet's edge against a room is often faint.
CANNY = (40, 120)
#: The Hough transform's angle step: 1°, the usual (half a degree cost twice the time, the
#: frame cue's most, for sides that may tilt by 20° anyway).
HOUGH_THETA = np.pi / 180
SIDES = ("left", "right", "top", "bottom")


@dataclass(frozen=True)
class Sides:
    """Where a sample's sides are: each side's line, as its place in the frame (x of a
    vertical side, y of a horizontal one, frame pixels) and its offset from the face's
    centre; and the face's width."""

    place: dict[str, float]
    offset: dict[str, float]
    face_w: float
    centre: tuple[float, float] = (0.0, 0.0)

    def framed(self, min_sides: int) -> bool:
        """A frame: at least `min_sides` sides, both upright ones among them (a print's or a
        phone's; shoulders or a hat brim give a level edge moving with a live face, rarely
        two upright ones)."""
        return len(self.place) >= min_sides and "left" in self.place and "right" in self.place


def find_sides(frame: np.ndarray, box: tuple[float, float, float, float],
               centre: tuple[float, float]) -> Sides:
    """The nearest long straight edge on each side of the face (those it has)."""
    x1, y1, x2, y2 = box
    fw = max(x2 - x1, 1.0)
    h, w = frame.shape[:2]
    wx1, wy1 = int(max(0, x1 - REACH * fw)), int(max(0, y1 - REACH * fw))
    wx2, wy2 = int(min(w, x2 + REACH * fw)), int(min(h, y2 + REACH * fw))
    if wx2 - wx1 < 16 or wy2 - wy1 < 16:
        return Sides({}, {}, fw, centre)
    s = WORK_PX / max(wx2 - wx1, wy2 - wy1)
    grey = cv2.cvtColor(frame[wy1:wy2, wx1:wx2], cv2.COLOR_BGR2GRAY)
    grey = cv2.resize(grey, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    edges = cv2.Canny(cv2.GaussianBlur(grey, (3, 3), 0), *CANNY)
    min_len = MIN_LENGTH * fw * s
    lines = cv2.HoughLinesP(edges, 1, HOUGH_THETA, threshold=max(10, int(min_len * 0.6)),
                            minLineLength=min_len, maxLineGap=max(2, int(0.05 * fw * s)))
    cx, cy = centre
    place: dict[str, float] = {}
    offset: dict[str, float] = {}
    for ax, ay, bx, by in ([] if lines is None else lines[:, 0]):
        ax, bx = ax / s + wx1, bx / s + wx1
        ay, by = ay / s + wy1, by / s + wy1
        dx, dy = bx - ax, by - ay
        if abs(dx) <= MAX_TILT * abs(dy):  # vertical: left or right of the face
            if min(ay, by) > y2 or max(ay, by) < y1:  # beside the face, not above or below
                continue
            at = ax + dx * (cy - ay) / dy  # its x at the face's centre
            side, gap = ("left", cx - at) if at < x1 else ("right", at - cx)
            if x1 <= at <= x2:
                continue
        elif abs(dy) <= MAX_TILT * abs(dx):  # horizontal: above or below
            if min(ax, bx) > x2 or max(ax, bx) < x1:
                continue
            at = ay + dy * (cx - ax) / dx  # its y at the face's centre
            side, gap = ("top", cy - at) if at < y1 else ("bottom", at - cy)
            if y1 <= at <= y2:
                continue
        else:
            continue
        if side not in offset or gap < offset[side]:  # the nearest edge on that side
            offset[side], place[side] = gap, at
    return Sides(place, offset, fw, centre)


def farthest(earlier: list[Sides], cur: Sides) -> Sides:
    """The earlier sample whose face was farthest from this one's: the most motion to see."""
    cx, cy = cur.centre
    return max(earlier, key=lambda s: (s.centre[0] - cx) ** 2 + (s.centre[1] - cy) ** 2)


def compare(ref: Sides, cur: Sides, move_min: float) -> tuple[int, int]:
    """(rigid, static): the sides the two samples share that moved with the face, and that
    stayed while the face moved against them; a side moved when its place or its offset
    changed by at least `move_min` face widths, three times more than the other did."""
    rigid = static = 0
    tol = move_min * cur.face_w
    for side in SIDES:
        if side not in ref.place or side not in cur.place:
            continue
        moved = abs(cur.place[side] - ref.place[side])  # in the frame
        slid = abs(cur.offset[side] - ref.offset[side])  # against the face
        if moved >= tol and slid * 3 <= moved:
            rigid += 1
        elif slid >= tol and moved * 3 <= slid:
            static += 1
    return rigid, static
