"""Live faces and presentation attacks, rendered from real photos for the liveness tests.

No spoof data set is reachable here, so the test bed must be physically faithful instead:
- **a live person** is the photo's face as a 3D head: the face mesh's 468 points (with their
  depth) as a textured mesh, turned a few degrees left and right under a camera's
  perspective, eyelids closed for a few frames to blink, blended into the room with no edge;
- **a print** is the same photo as a flat sheet with a white border, turned in 3D (a
  homography), its edges hard as paper's are; a *bare* print is cut to the picture's edge;
- **a phone** is the photo on a black-bezelled screen with a glare and a pixel grid;
- **a still print** does not move at all (nothing can be decided from it).
Every frame gets sensor noise and a JPEG round trip, as a camera stream has. What a render
does not show: a real head's hair and ears turning with it (only the face mesh turns), real
skin under a closed eyelid, a screen's moiré as a camera sees it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import Delaunay

from demo.scenes import FRAME_H, FRAME_W, background

#: A camera 2,000 px of focal length away (a 640-px frame's 18° field of view at 2 m).
FOCAL = 2000.0
RIGHT_EYE = [33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246]
LEFT_EYE = [263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466]


@dataclass(frozen=True)
class Face3D:
    """A photo scaled so its face is about `face_px` wide, with its mesh (468×3, depth in
    x's units) in the scaled photo's pixels."""

    name: str
    image: np.ndarray
    mesh: np.ndarray


def rotation(yaw: float, pitch: float) -> np.ndarray:
    a, b = np.radians(yaw), np.radians(pitch)
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rx @ ry


def _project(points: np.ndarray, centre: np.ndarray) -> np.ndarray:
    z = FOCAL + points[:, 2]
    return np.stack([centre[0] + FOCAL * points[:, 0] / z,
                     centre[1] + FOCAL * points[:, 1] / z], 1).astype(np.float32)


def close_eyes(image: np.ndarray, mesh: np.ndarray) -> np.ndarray:
    """Eyelids down: each eye painted over with the skin between it and the brow, and a
    dark lash line along the lower lid."""
    out = image.astype(np.float32)
    for eye in (RIGHT_EYE, LEFT_EYE):
        poly = np.int32(mesh[eye, :2])
        x, y, w, h = cv2.boundingRect(poly)
        skin = image[max(0, int(y - h * 0.9)):max(1, y), x:x + w].reshape(-1, 3)
        colour = np.median(skin, 0) if len(skin) else np.array([128.0, 128, 128])
        mask = np.zeros(image.shape[:2], np.uint8)
        cv2.fillPoly(mask, [poly], 255)
        mask = cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=max(1, int(h * 0.25)))
        soft = cv2.GaussianBlur(mask, (0, 0), max(1.0, h * 0.2)).astype(np.float32)[..., None]
        out = out * (1 - soft / 255) + colour * (soft / 255)
        cv2.polylines(out, [np.int32(mesh[eye[:9], :2])], False, (colour * 0.45).tolist(),
                      max(1, int(h * 0.12)), cv2.LINE_AA)
    return np.clip(out, 0, 255).astype(np.uint8)


def head(face: Face3D, yaw: float, pitch: float = 0.0, *, closed: bool = False,
         triangles: np.ndarray | None = None) -> np.ndarray:
    """The photo with its face turned as a head turns (far triangles drawn first); the
    mesh's edge is feathered into the photo, so no seam shows."""
    image = close_eyes(face.image, face.mesh) if closed else face.image
    src = face.mesh[:, :2].astype(np.float32)
    centre = face.mesh.mean(0)
    turned = (face.mesh - centre) @ rotation(yaw, pitch).T
    dst = _project(turned, centre)
    tris = Delaunay(src).simplices if triangles is None else triangles
    layer, cover = image.copy(), np.zeros(image.shape[:2], np.float32)
    h, w = image.shape[:2]
    for t in tris[np.argsort(-turned[tris].mean(1)[:, 2])]:
        s, d = src[t], dst[t]
        x, y, bw, bh = cv2.boundingRect(d)
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + bw + 1, w), min(y + bh + 1, h)
        if x1 <= x0 or y1 <= y0:
            continue
        m = cv2.getAffineTransform(s, (d - [x0, y0]).astype(np.float32))
        patch = cv2.warpAffine(image, m, (x1 - x0, y1 - y0), borderMode=cv2.BORDER_REFLECT)
        sel = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillConvexPoly(sel, np.int32(np.round((d - [x0, y0]) * 4)), 1, cv2.LINE_AA, 2)
        on = sel.astype(bool)
        layer[y0:y1, x0:x1][on] = patch[on]
        cover[y0:y1, x0:x1][on] = 1
    k = max(3, int(0.04 * np.ptp(dst[:, 0])) | 1)
    cover = cv2.GaussianBlur(cv2.erode(cover, np.ones((k, k))), (2 * k + 1, 2 * k + 1), 0)
    a = cover[..., None]
    return (layer * a + image * (1 - a)).astype(np.uint8)


def _place_soft(canvas: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    """A live person's surroundings: an elliptical feather, no edge."""
    h, w = patch.shape[:2]
    alpha = np.zeros((h, w), np.float32)
    cv2.ellipse(alpha, (w // 2, h // 2), (int(w * 0.42), int(h * 0.46)), 0, 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(2.0, w * 0.06))[..., None]
    region = canvas[y:y + h, x:x + w].astype(np.float32)
    canvas[y:y + h, x:x + w] = (patch * alpha + region * (1 - alpha)).astype(np.uint8)


def _sheet(face: Face3D, kind: str) -> np.ndarray:
    """The photo as a print (white border) or on a phone (black bezel, glare, pixel grid)."""
    img = face.image.astype(np.float32)
    if kind == "bare":  # a print cut to the picture's edge: no border, only its own edges
        return img.astype(np.uint8)
    if kind == "phone":
        h, w = img.shape[:2]
        grid = np.ones((h, w, 1), np.float32)
        grid[::3] *= 0.85
        grid[:, ::3] *= 0.85
        glare = np.linspace(0, 60, w, dtype=np.float32)[None, :, None] * \
            np.linspace(1, 0.2, h, dtype=np.float32)[:, None, None]
        img = np.clip(img * grid * 1.05 + glare, 0, 255)
        pad, colour = max(6, w // 14), (12, 12, 12)
    else:
        pad, colour = max(6, img.shape[1] // 16), (235, 235, 230)
    return cv2.copyMakeBorder(img.astype(np.uint8), pad, pad, pad, pad, cv2.BORDER_CONSTANT,
                              value=colour)


def _place_sheet(canvas: np.ndarray, sheet: np.ndarray, x: int, y: int, yaw: float,
                 pitch: float) -> None:
    """A flat sheet turned in 3D about its centre: one homography, hard edges."""
    h, w = sheet.shape[:2]
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    centre = np.array([w / 2, h / 2])
    turned = np.c_[corners - centre, np.zeros(4)] @ rotation(yaw, pitch).T
    dst = _project(turned, centre) + np.float32([x, y])
    hom = cv2.getPerspectiveTransform(corners, dst)
    size = (canvas.shape[1], canvas.shape[0])
    warped = cv2.warpPerspective(sheet, hom, size)
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), hom, size)
    canvas[mask > 127] = warped[mask > 127]


def scene(face: Face3D, kind: str, *, seconds: float = 4.0, fps: float = 10.0,
          amplitude: float = 12.0, blink_at: float | None = 1.2, seed: int = 0
          ) -> Iterator[tuple[float, np.ndarray]]:
    """(t, frame) of one kind of scene: `live` (a head turning ±`amplitude`° and blinking at
    `blink_at` s for 0.2 s), `print`, `bare` (a print with no border) and `phone` (the photo
    turned ±`amplitude`°), `still` (the print, not moving). The face sways a little in the
    frame as a held thing would."""
    rng = np.random.default_rng(seed)
    room = background()
    tris = Delaunay(face.mesh[:, :2]).simplices
    sheet = _sheet(face, kind if kind in ("phone", "bare") else "print")
    h, w = face.image.shape[:2]
    for i in range(int(seconds * fps)):
        t = i / fps
        phase = 2 * np.pi * t / 2.5
        yaw = 0.0 if kind == "still" else amplitude * np.sin(phase)
        pitch = 0.0 if kind == "still" else amplitude * 0.25 * np.sin(phase * 0.7)
        dx, dy = (0, 0) if kind == "still" else (int(6 * np.sin(phase * 0.5)),
                                                 int(3 * np.cos(phase * 0.5)))
        x, y = (FRAME_W - w) // 2 + dx, (FRAME_H - h) // 2 + dy
        frame = room.copy()
        if kind == "live":
            closed = blink_at is not None and blink_at <= t < blink_at + 0.2
            _place_soft(frame, head(face, yaw, pitch, closed=closed, triangles=tris), x, y)
        else:
            pad = (sheet.shape[1] - w) // 2
            _place_sheet(frame, sheet, x - pad, y - pad, yaw, pitch)
        noisy = frame.astype(np.float32) + rng.normal(0, 3, frame.shape)
        ok, jpg = cv2.imencode(".jpg", np.clip(noisy, 0, 255).astype(np.uint8),
                               [cv2.IMWRITE_JPEG_QUALITY, 85])
        assert ok
        yield t, cv2.imdecode(jpg, cv2.IMREAD_COLOR)


def face_3d(name: str, image: np.ndarray, box: tuple[float, float, float, float], landmarker,
            face_px: int = 130) -> Face3D | None:
    """The photo cut around its face (1.1 face widths of context each side) and scaled so the
    face is `face_px` wide, with the mesh the landmark model reads there; None when it reads
    none."""
    x1, y1, x2, y2 = box
    fw = x2 - x1
    cx1, cy1 = int(max(0, x1 - 1.1 * fw)), int(max(0, y1 - 1.1 * fw))
    cx2, cy2 = int(min(image.shape[1], x2 + 1.1 * fw)), int(min(image.shape[0], y2 + 1.1 * fw))
    s = face_px / fw
    cut = cv2.resize(image[cy1:cy2, cx1:cx2], None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    scaled = ((x1 - cx1) * s, (y1 - cy1) * s, (x2 - cx1) * s, (y2 - cy1) * s)
    if cut.shape[0] > FRAME_H - 20 or cut.shape[1] > FRAME_W - 20:
        return None
    mesh = landmarker.in_frame(cut, scaled)
    return None if mesh is None else Face3D(name, cut, mesh)
