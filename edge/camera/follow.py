"""Following a face between detector runs: a cheap look where it should be, not a model run.

A real visitor sways a few pixels while standing and talking; the motion detector sees it,
and without this every such frame would run the detector on the face's region. Instead, a
confirmed face that moved a little is looked for with normalised cross-correlation of its
last detected appearance (a small grey template) in a window around its last box: found with
a clear match, it is followed there without the detector; not found, or due for a refresh
(`scan.track_refresh_s`), the detector runs on its region as before. The template is taken
only from real detections, so following never drifts on its own guesses.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from facelens.edge.detect.base import Box, Detection

#: Template width in pixels: small enough to be cheap, large enough to tell a face from wall.
TEMPLATE_PX = 24


@dataclass
class _Appearance:
    template: np.ndarray  # grey, TEMPLATE_PX wide
    detection: Detection  # where it was last (detected or followed)
    scale: float  # template px per frame px


class Follower:
    def __init__(self, min_score: float = 0.75, search: float = 0.5) -> None:
        self.min_score, self.search = min_score, search
        self._faces: dict[str, _Appearance] = {}
        self.followed = 0  # faces followed without the detector, since start

    def remember(self, grey: np.ndarray, track_id: str, det: Detection) -> None:
        """A real detection of a track: its appearance for the frames that follow."""
        x1, y1, x2, y2 = (round(v) for v in det.box)
        h, w = grey.shape[:2]
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
        if x2 - x1 < 8 or y2 - y1 < 8:
            return
        scale = TEMPLATE_PX / (x2 - x1)
        patch = cv2.resize(grey[y1:y2, x1:x2], (TEMPLATE_PX, max(8, round((y2 - y1) * scale))),
                           interpolation=cv2.INTER_AREA)
        self._faces[track_id] = _Appearance(patch, det, scale)

    def moved(self, track_id: str, det: Detection) -> None:
        """A followed position: the template stays the detector's, the position moves."""
        face = self._faces.get(track_id)
        if face is not None:
            face.detection = det

    def forget(self, live: set[str]) -> None:
        self._faces = {k: v for k, v in self._faces.items() if k in live}

    def find(self, grey: np.ndarray, track_id: str) -> Detection | None:
        """The face of this track in this frame, near where it was, or None."""
        face = self._faces.get(track_id)
        if face is None:
            return None
        box = face.detection.box
        bw, bh = box[2] - box[0], box[3] - box[1]
        mx, my = bw * self.search, bh * self.search
        h, w = grey.shape[:2]
        sx1, sy1 = max(0, int(box[0] - mx)), max(0, int(box[1] - my))
        sx2, sy2 = min(w, int(box[2] + mx)), min(h, int(box[3] + my))
        if sx2 - sx1 < bw or sy2 - sy1 < bh:
            return None  # at the frame's edge: let the detector decide
        s = face.scale
        window = cv2.resize(grey[sy1:sy2, sx1:sx2],
                            (max(1, round((sx2 - sx1) * s)), max(1, round((sy2 - sy1) * s))),
                            interpolation=cv2.INTER_AREA)
        th, tw = face.template.shape[:2]
        if window.shape[0] < th or window.shape[1] < tw:
            return None
        scores = cv2.matchTemplate(window, face.template, cv2.TM_CCOEFF_NORMED)
        _, best, _, (px, py) = cv2.minMaxLoc(scores)
        if not np.isfinite(best) or best < self.min_score:
            return None
        nx1, ny1 = sx1 + px / s, sy1 + py / s
        dx, dy = nx1 - box[0], ny1 - box[1]
        moved_box: Box = (nx1, ny1, nx1 + bw, ny1 + bh)
        kps = tuple((x + dx, y + dy) for x, y in face.detection.keypoints)
        self.followed += 1
        return replace(face.detection, box=moved_box, keypoints=kps)
