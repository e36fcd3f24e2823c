"""Draw what the pipeline saw onto a copy of the frame: each face's box, track id, head
labels with a score bar, and — when asked — the regions the detector ran on, the motion it
saw and the full scan's tiles. The one drawing used by the live page, its MJPEG stream and
`facelens snapshot`."""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from facelens.edge.events import FrameView

GREEN, RED, BLUE, YELLOW, GREY = (80, 200, 80), (60, 60, 230), (230, 150, 40), (40, 220, 230), \
    (170, 170, 170)
OVERLAYS = ("regions", "motion", "tiles")


def annotate(view: FrameView, overlays: Iterable[str] = ()) -> np.ndarray:
    """A BGR image: the frame with its faces, plus the overlays named (see OVERLAYS)."""
    img = view.image.copy()
    show = set(overlays)
    if "tiles" in show:
        for x1, y1, x2, y2 in view.tiles:
            cv2.rectangle(img, (int(x1), int(y1)), (int(x2) - 1, int(y2) - 1), GREY, 1)
    if "motion" in show:
        for x1, y1, x2, y2 in view.motion:
            cv2.rectangle(img, (int(x1), int(y1)), (int(x2), int(y2)), YELLOW, 1)
    if "regions" in show:
        for x1, y1, x2, y2 in view.regions:
            cv2.rectangle(img, (int(x1), int(y1)), (int(x2) - 1, int(y2) - 1), BLUE, 2)
    for face in view.faces:
        x1, y1, x2, y2 = (round(v) for v in face.box)
        colour = RED if face.alarm else GREEN  # fake, mask: some analyser's alarm is on
        cv2.rectangle(img, (x1, y1), (x2, y2), colour, 2 if face.confirmed else 1)
        lines = [face.track_id.split("-")[-1] if face.confirmed else "?"]
        lines += [f"{label} {score:.0%}" for label, score in face.labels.values()]
        _label(img, x1, y2 + 2, lines, colour, [s for _, s in face.labels.values()])
    return img


def _label(img: np.ndarray, x: int, y: int, lines: list[str], colour: tuple[int, int, int],
           scores: list[float]) -> None:
    """Text lines under a box on a dark band, a score bar under each head's line."""
    font, scale, thick = cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1
    h_line = 16
    width = max(cv2.getTextSize(t, font, scale, thick)[0][0] for t in lines) + 8
    height = h_line * len(lines) + 4
    y = min(y, img.shape[0] - height)
    x = min(max(x, 0), max(0, img.shape[1] - width))
    band = img[y:y + height, x:x + width]
    band[:] = (band * 0.35).astype(np.uint8)
    for i, text in enumerate(lines):
        ty = y + h_line * (i + 1) - 3
        cv2.putText(img, text, (x + 4, ty - 2), font, scale, colour, thick, cv2.LINE_AA)
        if i >= 1 and i - 1 < len(scores):  # the head's score as a bar
            cv2.line(img, (x + 4, ty + 1), (x + 4 + int((width - 8) * scores[i - 1]), ty + 1),
                     colour, 2)


def to_jpeg(image: np.ndarray, quality: int = 80) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
