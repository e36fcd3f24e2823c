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
        self._mask: np.ndarray | None = None  # 1 where motion counts, at the small size
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
            self._background = self._long = None
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        grey = cv2.resize(grey, self._small, interpolation=cv2.INTER_AREA)
        return cv2.GaussianBlur(grey, (5, 5), 0)

    def _make_mask(self, small: tuple[int, int]) -> np.ndarray:
        mask = np.ones((small[1], small[0]), np.uint8)
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
        counted_px = self._mask > 0
        level = float(self._background[counted_px].mean())
        if level > 1:
            gain = float(grey[counted_px].mean()) / level
            if abs(gain - 1) > 0.02:
                self._background *= gain
                self._long *= gain
        diff = cv2.absdiff(grey, cv2.convertScaleAbs(self._background))
        changed = (diff > self.cfg.threshold) & (self._mask > 0)
        new = changed
        if self.cfg.long_alpha:
            # Where the frame is the slow background again, a ghost left the fast one.
            back = cv2.absdiff(grey, cv2.convertScaleAbs(self._long)) <= self.cfg.threshold
            new = changed & ~back
        moving = new.astype(np.uint8)
        counted = max(int(self._mask.sum()), 1)
        fraction = float(changed.sum()) / counted
        if fraction >= self.cfg.recalibrate_fraction:
            self._background, self._long = grey.astype(np.float32), grey.astype(np.float32)
            return Motion([], fraction, recalibrated=True)
        cv2.accumulateWeighted(grey, self._background, self.cfg.alpha)
        if self.cfg.long_alpha:
            still = (~changed).astype(np.uint8)  # people in view are not the room
            cv2.accumulateWeighted(grey, self._long, self.cfg.long_alpha, mask=still)
        if not moving.any():
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
