"""Where something moved: a cheap detector on a small grey copy of the frame.

A Pi on a shelf looks at an empty room most of the day. Comparing each frame with a running
background costs well under a millisecond at 160 px wide, and tells the detector where to
look, so an empty, still room costs no model run at all. As Frigate does it: a blurred,
downscaled grey frame; the absolute difference to a running average; a threshold well above
sensor noise; a change of the whole frame's brightness (a lamp, the camera's exposure)
followed at once; slow drift absorbed by the running average; and when most of the frame
changes at once anyway (the camera was moved) the background is re-learnt from the frame
instead of reporting the whole room as motion. Masked areas (a TV, a
window onto a street) never count.

A running average learns whoever stands still into the background, and when they leave, the
room they uncover differs from it: a *ghost* where they stood, reported as motion for the
seconds the average takes to forget them, which sends the face detector to an empty spot
every frame. So a second, slower background (`motion.long_alpha`) learns only what is not
moving; a change that the fast background sees but the slow one does not (the room as it was
before they came) is the room coming back, not motion.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facelens.edge.config import MotionConfig
from facelens.edge.detect.base import Box


@dataclass(frozen=True)
class Motion:
    """One frame's motion: boxes in frame pixels, the fraction of the (unmasked) frame that
    changed, and whether the background was re-learnt this frame."""

    boxes: list[Box]
    fraction: float
    recalibrated: bool = False


class MotionDetector:
    def __init__(self, cfg: MotionConfig) -> None:
        self.cfg = cfg
        self._background: np.ndarray | None = None
        self._long: np.ndarray | None = None  # the slow background: the room without people
        self._mask: np.ndarray | None = None  # 255 where motion counts, at the small size
        self._counted = 1  # its pixels that count
        self._scale = 1.0
        self._size = (0, 0)
        self._small = (0, 0)

    def _prepare(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        if (w, h) != self._size:  # first frame, or the camera changed resolution
            self._size = (w, h)
            self._scale = w / self.cfg.width
            self._small = (self.cfg.width, max(1, round(h / self._scale)))
            self._mask = self._make_mask(self._small)
            self._counted = max(cv2.countNonZero(self._mask), 1)
            self._background = self._long = None
        # Shrink first, then grey: a fifth of the cost of greying the whole frame and
        # averaging it down (INTER_LINEAR, as Frigate does; the blur evens the noise out).
        small = cv2.resize(image, self._small, interpolation=cv2.INTER_LINEAR)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        return cv2.GaussianBlur(grey, (5, 5), 0)

    def _make_mask(self, small: tuple[int, int]) -> np.ndarray:
        """255 where motion counts, 0 in the masked areas."""
        mask = np.full((small[1], small[0]), 255, np.uint8)
        for polygon in self.cfg.masks:
            pts = np.round(np.asarray(polygon, np.float64) / self._scale).astype(np.int32)
            cv2.fillPoly(mask, [pts], 0)
        return mask

    def update(self, image: np.ndarray) -> Motion:
        """Compare this frame with the background, then learn it into the background."""
        grey = self._prepare(image)
        if self._mask is None:
            raise RuntimeError("motion mask not prepared")
        if self._background is None:
            self._background, self._long = grey.astype(np.float32), grey.astype(np.float32)
            return Motion([], 0.0, recalibrated=True)
        assert self._long is not None
        # Exposure and light change the whole frame's brightness together: follow them at
        # once (a lamp switched on is not motion), then look for what changed beyond that.
        # OpenCV's own masked means, thresholds and counts: a Pi pays this every frame.
        level = cv2.mean(self._background, self._mask)[0]
        if level > 1:
            gain = cv2.mean(grey, self._mask)[0] / level
            if abs(gain - 1) > 0.02:
                self._background *= gain
                self._long *= gain
        thr = self.cfg.threshold
        diff = cv2.absdiff(grey, cv2.convertScaleAbs(self._background))
        changed = cv2.bitwise_and(cv2.threshold(diff, thr, 255, cv2.THRESH_BINARY)[1],
                                  self._mask)
        moving = changed
        if self.cfg.long_alpha:
            # Where the frame is the slow background again, a ghost left the fast one.
            away = cv2.absdiff(grey, cv2.convertScaleAbs(self._long))
            moving = cv2.bitwise_and(changed,
                                     cv2.threshold(away, thr, 255, cv2.THRESH_BINARY)[1])
        fraction = cv2.countNonZero(changed) / self._counted
        if fraction >= self.cfg.recalibrate_fraction:
            self._background, self._long = grey.astype(np.float32), grey.astype(np.float32)
            return Motion([], fraction, recalibrated=True)
        cv2.accumulateWeighted(grey, self._background, self.cfg.alpha)
        if self.cfg.long_alpha:  # people in view are not the room
            cv2.accumulateWeighted(grey, self._long, self.cfg.long_alpha,
                                   mask=cv2.bitwise_not(changed))
        if not cv2.countNonZero(moving):
            return Motion([], fraction)
        grown = cv2.dilate(moving, np.ones((3, 3), np.uint8), iterations=2)
        contours, _ = cv2.findContours(grown, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        s = self._scale
        boxes: list[Box] = []
        for c in contours:
            if cv2.contourArea(c) < self.cfg.min_area_px:
                continue
            x, y, w, h = cv2.boundingRect(c)
            boxes.append((x * s, y * s, (x + w) * s, (y + h) * s))
        return Motion(boxes, fraction)
