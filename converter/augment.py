"""Small, label-preserving face augmentations in numpy/OpenCV, for fine-tuning on few images.

Pruning fine-tunes on whatever faces the user has; with ~60 of them, each seen in a few
shifted, tilted, mirrored, re-lit versions, the pruned model keeps more of what it knew.
"""

from __future__ import annotations

import cv2
import numpy as np


def augment(image: np.ndarray, rng: np.random.Generator, *, max_rotation: float = 12.0,
            max_shift: float = 0.08, max_zoom: float = 0.1, flip: bool = True,
            max_brightness: float = 0.15) -> np.ndarray:
    """One random variant of a uint8 face (grey or BGR), same size and dtype."""
    h, w = image.shape[:2]
    angle = rng.uniform(-max_rotation, max_rotation)
    scale = 1.0 + rng.uniform(-max_zoom, max_zoom)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    m[0, 2] += rng.uniform(-max_shift, max_shift) * w
    m[1, 2] += rng.uniform(-max_shift, max_shift) * h
    out = cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    if flip and rng.random() < 0.5:
        out = out[:, ::-1]
    gain = 1.0 + rng.uniform(-max_brightness, max_brightness)
    return np.clip(out.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def augmented_copies(images: list[np.ndarray], copies: int,
                     rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    """The originals plus `copies` variants of each; returns (images, index of original)."""
    out, origin = list(images), list(range(len(images)))
    for _ in range(copies):
        for i, img in enumerate(images):
            out.append(augment(img, rng))
            origin.append(i)
    return out, np.array(origin)
