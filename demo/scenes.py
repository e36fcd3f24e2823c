"""Scenes and videos made from real face photos, for the demo, the tests and the benchmarks.

No face dataset can be downloaded here, but scikit-image ships real photographs: the
astronaut Eileen Collins (smiling), the cameraman, and 100 faces of Labeled Faces in the Wild.
They are pasted into a room-sized frame at the sizes a shelf camera sees, with the true
face boxes known, so detection can be measured rather than eyeballed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

FRAME_W, FRAME_H = 640, 480


@dataclass(frozen=True)
class FacePhoto:
    """A photo and the box of the face in it (x1, y1, x2, y2), measured once by hand."""

    name: str
    image: np.ndarray  # BGR uint8
    face: tuple[int, int, int, int]


def astronaut() -> FacePhoto:
    from skimage import data

    return FacePhoto("astronaut", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR),
                     (172, 66, 278, 172))


def cameraman() -> FacePhoto:
    from skimage import data

    return FacePhoto("cameraman", cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR),
                     (194, 121, 273, 200))


def lfw_faces(count: int = 100) -> list[FacePhoto]:
    """LFW crops are tight 25×25 greyscale faces; the face box is most of the crop."""
    from skimage import data

    faces = data.lfw_subset()[:min(count, 100)]  # the first 100 are faces, the rest are not
    out = []
    for i, f in enumerate(faces):
        grey = cv2.resize((f * 255).astype(np.uint8), (100, 100), interpolation=cv2.INTER_CUBIC)
        out.append(FacePhoto(f"lfw{i:03d}", cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR),
                             (10, 10, 90, 95)))
    return out


def background(width: int = FRAME_W, height: int = FRAME_H) -> np.ndarray:
    """A faceless real photo (a coffee cup), dimmed and softened to look like a room."""
    from skimage import data

    img = cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR)
    img = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur((img * 0.7).astype(np.uint8), (0, 0), 3)


def paste_face(canvas: np.ndarray, photo: FacePhoto, x: int, y: int,
               face_px: int) -> tuple[float, float, float, float]:
    """Paste the photo scaled so its face is `face_px` tall with the face's top-left at
    (x, y), with a feathered edge; return the face box in the canvas."""
    fx1, fy1, fx2, fy2 = photo.face
    s = face_px / (fy2 - fy1)
    # Keep a margin of context around the face (hair, neck), as a camera would see.
    mx, my = int((fx2 - fx1) * 0.6), int((fy2 - fy1) * 0.6)
    sx1, sy1 = max(0, fx1 - mx), max(0, fy1 - my)
    sx2 = min(photo.image.shape[1], fx2 + mx)
    sy2 = min(photo.image.shape[0], fy2 + my)
    patch = cv2.resize(photo.image[sy1:sy2, sx1:sx2],
                       (max(1, round((sx2 - sx1) * s)), max(1, round((sy2 - sy1) * s))),
                       interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    px, py = round(x - (fx1 - sx1) * s), round(y - (fy1 - sy1) * s)
    h, w = patch.shape[:2]
    cx1, cy1 = max(0, px), max(0, py)
    cx2, cy2 = min(canvas.shape[1], px + w), min(canvas.shape[0], py + h)
    if cx2 <= cx1 or cy2 <= cy1:
        raise ValueError("face pasted entirely outside the frame")
    alpha = np.zeros((h, w), np.float32)
    feather = max(1, min(h, w) // 8)
    alpha[feather:h - feather, feather:w - feather] = 1.0
    alpha = cv2.blur(alpha, (2 * feather + 1, 2 * feather + 1))[..., None]
    region = canvas[cy1:cy2, cx1:cx2].astype(np.float32)
    part = patch[cy1 - py:cy2 - py, cx1 - px:cx2 - px].astype(np.float32)
    a = alpha[cy1 - py:cy2 - py, cx1 - px:cx2 - px]
    canvas[cy1:cy2, cx1:cx2] = (part * a + region * (1 - a)).astype(np.uint8)
    return (x, y, x + (fx2 - fx1) * s, y + face_px)


def room_scene(photos: list[FacePhoto], sizes: list[int], rng: np.random.Generator,
               width: int = FRAME_W, height: int = FRAME_H
               ) -> tuple[np.ndarray, list[tuple[float, float, float, float]]]:
    """Faces of the given heights at random, non-overlapping places; returns (frame, boxes)."""
    canvas = background(width, height)
    boxes: list[tuple[float, float, float, float]] = []
    for photo, size in zip(photos, sizes, strict=True):
        for _ in range(200):
            x = int(rng.integers(8, width - size * 2))
            y = int(rng.integers(8, height - size * 2))
            cand = (x - size, y - size, x + 2 * size, y + 2 * size)  # keep context apart too
            if all(cand[2] < b[0] or cand[0] > b[2] or cand[3] < b[1] or cand[1] > b[3]
                   for b in boxes):
                break
        boxes.append(paste_face(canvas, photo, x, y, size))
    return canvas, boxes


def write_video(path: str | Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """Write frames with OpenCV (MJPG in .avi decodes everywhere OpenCV does)."""
    path = Path(path)
    h, w = frames[0].shape[:2]
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def cover_mouth(canvas: np.ndarray, face: tuple[float, float, float, float],
                fraction: float = 0.4) -> None:
    """Hide the lower `fraction` of the face behind a mug-coloured block (a raised cup or
    hand): the smile disappears from view while the face stays detectable."""
    x1, y1, x2, y2 = (int(v) for v in face)
    top = int(y2 - (y2 - y1) * fraction)
    canvas[top:y2 + 10, max(0, x1 - 5):x2 + 5] = (60, 80, 140)


@dataclass(frozen=True)
class AstronautVideo:
    path: Path
    fps: float
    face_frames: range  # frame indices in which the face is visible
    covered_frames: range  # frame indices in which the mouth is hidden
    total_frames: int


def astronaut_video(path: str | Path, *, fps: float = 10.0, empty_before: int = 10,
                    face_frames: int = 50, empty_after: int = 25) -> AstronautVideo:
    """An empty room; the smiling astronaut arrives (face ~110 px, drifting slowly), hides
    her smile behind a cup for 1.5 s, smiles again, and leaves; then the empty room again.
    So one track should give `new` (happy), `update`s as the smile goes and comes back, and
    `end`."""
    photo = astronaut()
    frames = [background() for _ in range(empty_before)]
    covered = range(15, 30)
    for i in range(face_frames):
        canvas = background()
        box = paste_face(canvas, photo, 220 + 2 * i, 140, 110)
        if i in covered:
            cover_mouth(canvas, box)
        frames.append(canvas)
    frames += [background() for _ in range(empty_after)]
    start = empty_before
    write_video(path, frames, fps)
    return AstronautVideo(Path(path), fps, range(start, start + face_frames),
                          range(start + covered.start, start + covered.stop), len(frames))


def room_video(path, n_frames: int = 30):
    """Four people at room-camera size (32-75 px faces) in different places, drifting."""
    people = [
        (astronaut(), 60, 50, 32, (2, 0)),
        (tilted(astronaut(), 12, mirror=True), 420, 60, 45, (0, 1)),
        (tilted(astronaut(), -10), 110, 300, 60, (1, -1)),
        (cameraman(), 430, 280, 75, (-1, 0)),
    ]
    frames, truth = [], []
    for i in range(n_frames):
        canvas = background()
        truth.append([paste_face(canvas, photo, x + dx * i, y + dy * i, size)
                      for photo, x, y, size, (dx, dy) in people])
        frames.append(canvas)
    frames += [background()] * 20
    write_video(path, frames)
    return truth


def tilted(photo: FacePhoto, degrees: float, mirror: bool = False) -> FacePhoto:
    """The same photo with the head tilted (rotated about the face centre), optionally
    mirrored: a camera rarely sees a face upright and frontal."""
    img = photo.image[:, ::-1].copy() if mirror else photo.image
    x1, y1, x2, y2 = photo.face
    if mirror:
        w = img.shape[1]
        x1, x2 = w - x2, w - x1
    centre = ((x1 + x2) / 2, (y1 + y2) / 2)
    m = cv2.getRotationMatrix2D(centre, degrees, 1.0)
    rotated = cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REFLECT)
    return FacePhoto(f"{photo.name}{'-m' if mirror else ''}@{degrees:g}", rotated, (x1, y1, x2, y2))


def face_crops(count: int = 100) -> list[np.ndarray]:
    """Real face crops as a detector would hand them to a classifier: the astronaut, the
    cameraman and LFW faces (tight greyscale crops), each with the classifier margin."""
    from facelens.edge.detect.base import crop

    whole = [astronaut(), cameraman()]
    crops = [crop(p.image, p.face, 0.2) for p in whole]
    crops += [p.image for p in lfw_faces(max(0, count - len(crops)))]
    return crops[:count]


def write_face_folder(folder: str | Path, count: int = 100) -> Path:
    """`face_crops` as PNG files: a calibration folder for the converter."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(face_crops(count)):
        cv2.imwrite(str(folder / f"face{i:03d}.png"), img)
    return folder


@dataclass(frozen=True)
class Visitor:
    """One person in the room-camera video: the frames their whole face is in view, its
    height, and its box per frame."""

    name: str
    face_px: int
    boxes: dict[int, tuple[float, float, float, float]]

    @property
    def first(self) -> int:
        return min(self.boxes)

    @property
    def last(self) -> int:
        return max(self.boxes)


@dataclass(frozen=True)
class RoomCameraVideo:
    path: Path
    fps: float
    total_frames: int
    visitors: list[Visitor]
    light_switch_frame: int  # the frame the room's light jumps (nobody is there)

    @property
    def empty_fraction(self) -> float:
        busy = set().union(*(v.boxes for v in self.visitors)) if self.visitors else set()
        return 1 - len(busy) / self.total_frames


@dataclass(frozen=True)
class Visit:
    """One person's time in a room video: walks in from a side in 1 s, stays `stay` frames
    swaying (`sway` px across and up-down, `pace` times the default speed), walks out."""

    photo: FacePhoto
    start: int
    stay: int
    size: int
    x: int
    y: int
    side: int  # -1: comes from and goes to the left; 1: the right
    sway: tuple[float, float] = (3.0, 2.0)
    pace: float = 1.0


def room_camera_video(path: str | Path, *, seconds: float = 180, fps: float = 10.0,
                      visitors: int = 15, seed: int = 0) -> RoomCameraVideo:
    """What a shelf camera sees all day: a still room with sensor noise and slow light drift
    (and once, the light switched up), and people (faces 35–90 px, upright, tilted, mirrored)
    who walk in from a side, stay 2.5–5.5 s swaying a little, and walk out; nobody there most of
    the time. Frames are written as they are made (a 3-minute video does not fit in memory)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * fps)
    photos = _room_photos()
    # Arrivals spread over the video, each visit: 1 s in, 3-8 s stay, 1 s out.
    walk = int(fps)
    plans = []
    slot = n // visitors
    for k in range(visitors):
        stay = int(rng.uniform(2.5, 5.5) * fps)
        start = k * slot + int(rng.integers(0, max(1, slot - stay - 2 * walk)))
        size = int(rng.integers(35, 91))
        y = int(rng.integers(20, FRAME_H - 2 * size - 20))
        x = int(rng.integers(size, FRAME_W - 2 * size))
        side = -1 if rng.random() < 0.5 else 1
        plans.append(Visit(photos[k % len(photos)], start, stay, size, x, y, side))
    return _render_room(path, n, fps, plans, rng, light_switch=n // 2 + slot // 2)


def lively_room_video(path: str | Path, *, fps: float = 10.0, seed: int = 1
                      ) -> RoomCameraVideo:
    """A second room video, 3 minutes, of what visitors really do: they sway and nod while they
    stand and talk (8 px across at about 0.5 Hz, 4 px up and down), come in pairs (and once
    three faces at a time), leave after a moment and come back, and one stands still for a
    minute. The room as in `room_camera_video` (noise, drift, a light switched once)."""
    rng = np.random.default_rng(seed)
    n = int(180 * fps)
    photos = _room_photos()
    talk, still = (8.0, 4.0), (1.0, 0.5)

    def visit(k: int, start_s: float, stay_s: float, x: int, sway=talk, pace=3.0) -> Visit:
        size = int(rng.integers(35, 91))
        y = int(rng.integers(20, FRAME_H - 2 * size - 20))
        x = int(min(max(x, size), FRAME_W - 2 * size))
        return Visit(photos[k % len(photos)], int(start_s * fps), int(stay_s * fps), size, x,
                     y, -1 if x < FRAME_W / 2 else 1, sway, pace)

    plans = [visit(0, 5, 7, 120), visit(1, 5.5, 6.5, 420),         # a pair, talking
             visit(2, 20, 1.5, 300), visit(2, 26, 3, 320),           # a moment, then back
             visit(3, 40, 60, 200, still, 1.0),                      # stands still a minute
             visit(4, 70, 6, 430), visit(5, 70.5, 5, 60),            # with a pair beside
             visit(0, 115, 6, 260),                                  # one who talks
             visit(1, 130, 6, 110), visit(5, 130.5, 6, 400),         # a pair
             visit(4, 150, 1.5, 250), visit(4, 155, 4, 270),         # a moment, then back
             visit(3, 170, 5, 330)]
    return _render_room(path, n, fps, plans, rng, light_switch=int(108 * fps))


def _room_photos() -> list[FacePhoto]:
    return [astronaut(), cameraman(), tilted(astronaut(), 12, mirror=True),
            tilted(cameraman(), -10, mirror=True), tilted(astronaut(), -15),
            tilted(cameraman(), 8)]


def _render_room(path: str | Path, n: int, fps: float, plans: list[Visit],
                 rng: np.random.Generator, light_switch: int) -> RoomCameraVideo:
    base = background().astype(np.float32)
    walk = int(fps)
    while any(p.start <= light_switch <= p.start + p.stay + 2 * walk for p in plans):
        light_switch += 1  # switch the light in an empty room
    path = Path(path)
    fourcc = cv2.VideoWriter_fourcc(*"MJPG")
    writer = cv2.VideoWriter(str(path), fourcc, fps, (FRAME_W, FRAME_H))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    truth: list[dict[int, tuple[float, float, float, float]]] = [{} for _ in plans]
    for i in range(n):
        gain = 1.0 + 0.06 * np.sin(2 * np.pi * i / (60 * fps)) + (0.25 if i >= light_switch
                                                                   else 0.0)
        canvas = np.clip(base * gain, 0, 255).astype(np.uint8)
        for k, v in enumerate(plans):
            t = i - v.start
            if t < 0 or t >= v.stay + 2 * walk:
                continue
            off = (FRAME_W + 2 * v.size) * v.side  # where they come from and go to
            if t < walk:
                px = v.x + off * (1 - t / walk)
            elif t < walk + v.stay:
                px = v.x + v.sway[0] * np.sin(v.pace * t / fps)
            else:
                px = v.x + off * (t - walk - v.stay) / walk
            try:
                box = paste_face(canvas, v.photo, int(px),
                                 int(v.y + v.sway[1] * np.sin(v.pace * t / 7)), v.size)
            except ValueError:
                continue
            if box[0] >= 0 and box[2] <= FRAME_W:
                truth[k][i] = box
        noise = rng.normal(0, 2.5, canvas.shape)
        writer.write(np.clip(canvas + noise, 0, 255).astype(np.uint8))
    writer.release()
    people = [Visitor(f"{v.photo.name}#{k}", v.size, boxes)
              for k, (v, boxes) in enumerate(zip(plans, truth, strict=True)) if boxes]
    return RoomCameraVideo(path, fps, n, people, light_switch)


def visits_video(path: str | Path, people: list[FacePhoto], *, fps: float = 10.0,
                 frames_each: int = 40, gap: int = 15, face_px: int = 110) -> Path:
    """People visit one at a time: each face (`face_px` tall, drifting slowly) for
    `frames_each` frames, with `gap` empty frames before each and at the end."""
    frames: list[np.ndarray] = []
    for person in people:
        frames += [background() for _ in range(gap)]
        for i in range(frames_each):
            canvas = background()
            paste_face(canvas, person, 200 + 2 * i, 130, face_px)
            frames.append(canvas)
    frames += [background() for _ in range(gap)]
    return write_video(path, frames, fps)


def photo_of(image: np.ndarray, name: str, face: tuple[int, int, int, int]) -> FacePhoto:
    return FacePhoto(name, image, face)
