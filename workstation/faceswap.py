"""Classic face swaps, for an honest test of an authenticity model: fakes made another way
than the self-blended ones it learnt from.

One person's face is warped onto another's along their landmarks (a Delaunay triangulation of
the target's points, one affine warp per triangle) and then seamlessly cloned (Poisson
blending) inside the target's face hull — the recipe of the early face-swap tools. If a
model only learnt to spot its own blends, its scores on these show it.
"""

from __future__ import annotations

import cv2
import numpy as np


def _triangles(points: np.ndarray, shape: tuple[int, int]) -> list[tuple[int, int, int]]:
    """Delaunay triangles of `points`, as index triples."""
    h, w = shape
    subdiv = cv2.Subdiv2D((0, 0, w, h))
    inside = [(float(min(max(x, 0), w - 1)), float(min(max(y, 0), h - 1))) for x, y in points]
    for p in inside:
        subdiv.insert(p)
    lookup = {(round(x, 1), round(y, 1)): i for i, (x, y) in enumerate(inside)}
    out = []
    for t in subdiv.getTriangleList():
        a, b, c = (lookup.get((round(float(t[k]), 1), round(float(t[k + 1]), 1)))
                   for k in (0, 2, 4))
        if a is not None and b is not None and c is not None:
            out.append((a, b, c))
    return out


def face_swap(source: np.ndarray, target: np.ndarray, source_points: np.ndarray,
              target_points: np.ndarray) -> np.ndarray:
    """`target` with the face of `source` warped onto it and cloned in (BGR uint8, the
    target's size); points are each crop's landmarks (N×2, the same N)."""
    h, w = target.shape[:2]
    warped = target.copy()  # a triangle the triangulation missed keeps the target
    for a, b, c in _triangles(target_points, (h, w)):
        src_tri = source_points[[a, b, c]].astype(np.float32)
        dst_tri = target_points[[a, b, c]].astype(np.float32)
        x, y, bw, bh = cv2.boundingRect(dst_tri)
        if bw <= 0 or bh <= 0:
            continue
        origin = np.array([x, y], np.float32)
        m = cv2.getAffineTransform(src_tri, dst_tri - origin)
        patch = cv2.warpAffine(source, m, (bw, bh), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT_101)
        tri_mask = np.zeros((bh, bw), np.uint8)
        cv2.fillConvexPoly(tri_mask, np.round(dst_tri - origin).astype(np.int32), 1)
        x2, y2 = min(x + bw, w), min(y + bh, h)
        region = warped[y:y2, x:x2]
        keep = tri_mask[:y2 - y, :x2 - x].astype(bool)
        region[keep] = patch[:y2 - y, :x2 - x][keep]
    hull = cv2.convexHull(np.round(target_points).astype(np.int32))
    filled = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(filled, hull, 255)
    mask = cv2.erode(filled, np.ones((3, 3), np.uint8))
    x, y, bw, bh = cv2.boundingRect(hull)
    centre = (x + bw // 2, y + bh // 2)
    return cv2.seamlessClone(warped, target, mask, centre, cv2.NORMAL_CLONE)


def swap_set(faces: list[np.ndarray], points: list[np.ndarray | None]
             ) -> tuple[list[np.ndarray], np.ndarray]:
    """Every face with landmarks as a real, and as a target of the next face's swap: images
    and labels (0 real, 1 fake)."""
    usable = [i for i, p in enumerate(points) if p is not None]
    images, labels = [], []
    for k, i in enumerate(usable):
        j = usable[(k + 1) % len(usable)]
        if j == i:
            continue
        src = cv2.resize(faces[j], (faces[i].shape[1], faces[i].shape[0]))
        sx = faces[i].shape[1] / faces[j].shape[1]
        sy = faces[i].shape[0] / faces[j].shape[0]
        src_pts = points[j] * np.array([sx, sy], np.float32)  # type: ignore[operator]
        images += [faces[i], face_swap(src, faces[i], src_pts, points[i])]  # type: ignore[arg-type]
        labels += [0, 1]
    return images, np.array(labels, np.int64)
