"""Small, label-preserving face augmentations in numpy/OpenCV, for fine-tuning on few images.

Pruning fine-tunes on whatever faces the user has; with ~50 of them, each seen in many
shifted, tilted, mirrored, re-lit, blurred and noisy versions (what a camera does to a face),
the pruned model learns the original's answers on more than the faces themselves.
"""

from __future__ import annotations

import cv2
import numpy as np


def augment(image: np.ndarray, rng: np.random.Generator, *, max_rotation: float = 12.0,
            max_shift: float = 0.08, max_zoom: float = 0.1, flip: bool = True,
            max_brightness: float = 0.15, max_contrast: float = 0.25,
            p_blur: float = 0.3, p_noise: float = 0.3, p_gamma: float = 0.3) -> np.ndarray:
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
    f: np.ndarray = out.astype(np.float32)
    mean = float(f.mean())
    f = (f - mean) * (1.0 + rng.uniform(-max_contrast, max_contrast)) + mean * (
        1.0 + rng.uniform(-max_brightness, max_brightness))
    if rng.random() < p_blur:  # out of focus, or a small face scaled up
        k = int(rng.choice([3, 5]))
        f = cv2.GaussianBlur(f, (k, k), 0)
    if rng.random() < p_noise:  # sensor noise in a dim room
        f = f + rng.normal(0.0, rng.uniform(2.0, 8.0), f.shape)
    if rng.random() < p_gamma:  # another camera's tone curve
        f = 255.0 * (np.clip(f, 0, 255) / 255.0) ** rng.uniform(0.7, 1.4)
    return np.clip(f, 0, 255).astype(np.uint8)


def augmented_copies(images: list[np.ndarray], copies: int,
                     rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    """The originals plus `copies` variants of each; returns (images, index of original)."""
    out, origin = list(images), list(range(len(images)))
    for _ in range(copies):
        for i, img in enumerate(images):
            out.append(augment(img, rng))
            origin.append(i)
    return out, np.array(origin)
