"""Is the face's surface a plane? Points of its texture followed from frame to frame.

The face mesh (liveness.py) is a network's guess of where a face's landmarks are: shown a
photo turning, it reads a head turning, so its points need not move as the photo does. Points
of the image's own texture do: corners on a print or a screen are painted on one plane, and
as it turns every one of them moves by a single homography, up to the tracker's noise. On a
head the nose, the cheeks and the brows lie at different depths and the homography leaves a
residual that grows with the turn. So: corners inside the face (Shi-Tomasi), followed with
pyramidal Lucas-Kanade and kept only when tracking them back lands where they started; at
each sample, the residual a homography leaves of their motion since the first sample
(*parallax*) and the residual a similarity leaves (*change*: did the surface turn at all),
both as a share of the face's width.

On the tuning faces' renders (benchmarks/liveness.py --faces tune, 9 faces): prints, bare
prints and phones turning ±14° left at most 0.0027, still prints 0.0024; heads turning ±8°
left 0.0051-0.0104 and ±14° 0.0109-0.0173. Change: prints turning ±14° 0.0035-0.0057, a print
turning ±8° no more than one standing still (0.0026 against 0.0025): only a turn of about
10° or more is seen as one (`liveness.flow_moved`, 0.003, chosen on those faces).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facelens.edge.detect.base import Box

#: Corners followed at most, and the fewest a comparison needs.
MAX_POINTS = 80
MIN_POINTS = 12
#: Lucas-Kanade: a 15-px window on 3 pyramid levels; a point is kept while tracking it back
#: lands within this many pixels of where it was.
WINDOW, LEVELS = (15, 15), 2
CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)
BACK_PX = 0.5
#: The part of the face box corners are taken from: inset from its sides and top (its edge
#: against the room slides as a head turns), less at the bottom (the chin's box is tight).
INSET, INSET_BOTTOM = 0.15, 0.10
#: Around the face, in face widths: how far its points may move between two samples.
MARGIN = 0.5


@dataclass
class SurfaceFlow:
    """One track's followed points: where they were at the first sample, where they are,
    and the grey patch of the frame they were last seen in (with its origin)."""

    ref: np.ndarray
    cur: np.ndarray
    patch: np.ndarray
    origin: tuple[int, int]
    width: float  # the face's width at the first sample


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image


def _patch(image: np.ndarray, box: Box) -> tuple[np.ndarray, tuple[int, int]]:
    """The face with half a face width around it, in grey: where its points can move to
    by the next sample (only this part of the frame is converted)."""
    w = (box[2] - box[0]) * MARGIN
    h, fw = image.shape[:2]
    x0, y0 = max(0, int(box[0] - w)), max(0, int(box[1] - w))
    x1, y1 = min(fw, int(box[2] + w)), min(h, int(box[3] + w))
    return _grey(image[y0:y1, x0:x1]), (x0, y0)


def start(image: np.ndarray, box: Box) -> SurfaceFlow | None:
    """Corners inside the face (a BGR frame); None when it has too little texture."""
    patch, (ox, oy) = _patch(image, box)
    w = box[2] - box[0]
    mask = np.zeros_like(patch)
    cv2.rectangle(mask, (int(box[0] + INSET * w) - ox, int(box[1] + INSET * w) - oy),
                  (int(box[2] - INSET * w) - ox, int(box[3] - INSET_BOTTOM * w) - oy), 255, -1)
    found = cv2.goodFeaturesToTrack(patch, MAX_POINTS, 0.01, max(3.0, w / 20), mask=mask)
    if found is None or len(found) < MIN_POINTS:
        return None
    pts = found.reshape(-1, 2) + np.array([ox, oy], np.float32)
    return SurfaceFlow(pts.copy(), pts.copy(), patch, (ox, oy), float(w))


def follow(flow: SurfaceFlow, image: np.ndarray, box: Box) -> bool:
    """Move the points on to this frame (BGR) where the face is at `box`; False when too
    few are left to compare."""
    ox, oy = flow.origin
    ph, pw = flow.patch.shape[:2]
    now = _grey(image[oy:oy + ph, ox:ox + pw])
    if now.shape != flow.patch.shape:
        return False  # the face's surroundings left the frame
    off = np.array([ox, oy], np.float32)
    prev = (flow.cur - off).reshape(-1, 1, 2).astype(np.float32)
    nxt, ok, _ = cv2.calcOpticalFlowPyrLK(flow.patch, now, prev, prev.copy(), winSize=WINDOW,
                                          maxLevel=LEVELS, criteria=CRITERIA)
    back, ok_back, _ = cv2.calcOpticalFlowPyrLK(now, flow.patch, nxt, nxt.copy(),
                                                winSize=WINDOW, maxLevel=LEVELS,
                                                criteria=CRITERIA)
    kept = ((ok.ravel() == 1) & (ok_back.ravel() == 1)
            & (np.linalg.norm((back - prev).reshape(-1, 2), axis=1) < BACK_PX))
    if kept.sum() < MIN_POINTS:
        return False
    flow.ref, flow.cur = flow.ref[kept], nxt.reshape(-1, 2)[kept] + off
    flow.patch, flow.origin = _patch(image, box)
    return True


def plane_residuals(ref: np.ndarray, cur: np.ndarray, scale: float) -> tuple[float, float]:
    """(parallax, change) of points moved from `ref` to `cur`: the RMS of what the best
    homography, and what the best similarity, leave unexplained, over `scale` (a length of
    the face). Shared by the texture here and the face mesh (liveness.py)."""
    a, b = ref.astype(np.float32), cur.astype(np.float32)
    h, _ = cv2.findHomography(a, b, 0)
    sim, _ = cv2.estimateAffinePartial2D(a, b, method=cv2.LMEDS)
    if h is None or sim is None:
        return 0.0, 0.0
    by_h = cv2.perspectiveTransform(a[None], h)[0]
    by_sim = a @ sim[:, :2].T + sim[:, 2]

    def rms(d: np.ndarray) -> float:
        return float(np.sqrt((d ** 2).sum(1).mean())) / scale

    return rms(by_h - b), rms(by_sim - b)


def residuals(flow: SurfaceFlow) -> tuple[float, float]:
    """(parallax, change) of the points' motion since the first sample, over the face's
    width."""
    return plane_residuals(flow.ref, flow.cur, flow.width)
