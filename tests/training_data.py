"""Small datasets in the exact layouts of the real ones, with a signal a CNN can learn:
FER-2013's CSV and image-folder layouts, and a real/fake folder tree."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facelens.edge.contract import FER2013_LABELS


def emotion_face(k: int, rng: np.random.Generator) -> np.ndarray:
    """48×48 grey 'face' of class k: a bright bar in the k-th of 7 horizontal bands, at a
    random horizontal place and brightness, over noise."""
    img = rng.integers(30, 110, (48, 48)).astype(np.uint8)
    y = 2 + k * 6 + int(rng.integers(0, 2))
    x = int(rng.integers(2, 22))
    cv2.rectangle(img, (x, y), (x + 22, y + 3), int(rng.integers(200, 256)), -1)
    return cv2.GaussianBlur(img, (3, 3), 0)


def fer_csv(path: Path, per_class: int = 40, seed: int = 0) -> Path:
    """`emotion,pixels,Usage` rows, split 70/15/15 into Training/PublicTest/PrivateTest."""
    rng = np.random.default_rng(seed)
    rows = ["emotion,pixels,Usage"]
    for k in range(7):
        for i in range(per_class):
            usage = ("Training" if i < per_class * 0.7 else
                     "PublicTest" if i < per_class * 0.85 else "PrivateTest")
            px = " ".join(str(int(v)) for v in emotion_face(k, rng).ravel())
            rows.append(f"{k},{px},{usage}")
    order = [rows[0], *[rows[1:][i] for i in rng.permutation(len(rows) - 1)]]
    path.write_text("\n".join(order) + "\n")
    return path


def fer_folder(root: Path, per_class: int = 40, seed: int = 0) -> Path:
    """train/<class>/*.png and test/<class>/*.png, as the Kaggle image-folder version."""
    rng = np.random.default_rng(seed)
    for k, name in enumerate(FER2013_LABELS):
        for i in range(per_class):
            split = "train" if i < per_class * 0.8 else "test"
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"{i:04d}.png"), emotion_face(k, rng))
    return root


def real_faces(count: int = 100) -> list[np.ndarray]:
    """Real photos: scikit-image's astronaut, cameraman and LFW faces, as grey 48×48 crops."""
    from demo.scenes import face_crops

    out = []
    for img in face_crops(count):
        grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
        out.append(cv2.resize(grey, (48, 48), interpolation=cv2.INTER_AREA))
    return out


def real_fake_tree(root: Path, seed: int = 0) -> Path:
    """real/ holds real face photos; fake/ the same people with a pasted, re-lit, softened
    face region — the crude face swap a detector must learn to see."""
    rng = np.random.default_rng(seed)
    faces = real_faces()
    (root / "real").mkdir(parents=True, exist_ok=True)
    (root / "fake").mkdir(parents=True, exist_ok=True)
    for i, face in enumerate(faces):
        cv2.imwrite(str(root / "real" / f"{i:04d}.png"), face)
        swapped = cv2.GaussianBlur(face, (0, 0), 1.5).astype(np.float32) * 0.7 + 60
        mask = np.zeros_like(face, np.float32)
        cv2.ellipse(mask, (24, 26), (int(rng.integers(12, 16)), 17), 0, 0, 360, 1.0, -1)
        fake = (swapped * mask + face * (1 - mask)).clip(0, 255).astype(np.uint8)
        cv2.imwrite(str(root / "fake" / f"{i:04d}.png"), fake)
    return root
