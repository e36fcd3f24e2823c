"""Self-blended images (Shiohara & Yamasaki, CVPR 2022): fakes made from real faces alone.

A face is blended with a slightly transformed copy of itself inside a face-shaped mask. The
result carries the traces every face swap leaves — a blending boundary, a colour and
sharpness mismatch, a small misalignment — without the identity change, so a detector
trained on it learns the traces rather than one generator's fingerprints, which is why it
generalises to deepfakes it has not seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class BlendParams:
    max_shift: float = 0.03  # of the face size
    max_scale: float = 0.05
    ratio: tuple[float, float] = (0.25, 1.0)  # how much of the copy shows inside the mask


def hull_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Float mask in [0, 1]: 1 inside the convex hull of landmarks (x, y) in pixels."""
    mask = np.zeros(shape, np.float32)
    hull = cv2.convexHull(np.round(points).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1.0)
    return mask


def face_mask(shape: tuple[int, int], rng: np.random.Generator,
              points: np.ndarray | None = None) -> np.ndarray:
    """A face-shaped region: the landmarks' hull when given (face_landmark or the detector's
    keypoints), else a jittered ellipse over the inner face of a centred crop; then randomly
    eroded or dilated and blurred, as SBI does, so boundaries vary."""
    h, w = shape
    if points is not None and len(points) >= 3:
        mask = hull_mask(points, shape)
    else:
        mask = np.zeros(shape, np.float32)
        centre = (int(w * (0.5 + rng.uniform(-0.04, 0.04))),
                  int(h * (0.55 + rng.uniform(-0.04, 0.04))))
        axes = (max(2, int(w * rng.uniform(0.28, 0.38))), max(2, int(h * rng.uniform(0.34, 0.44))))
        cv2.ellipse(mask, centre, axes, rng.uniform(-10, 10), 0, 360, 1.0, -1)
    k = max(1, round(min(h, w) * rng.uniform(0.02, 0.08)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
    mask = cv2.erode(mask, kernel) if rng.random() < 0.5 else cv2.dilate(mask, kernel)
    sigma = rng.uniform(0.5, 3.0) * min(h, w) / 64
    return np.clip(cv2.GaussianBlur(mask, (0, 0), max(sigma, 0.3)), 0.0, 1.0)


def _transformed_copy(face: np.ndarray, rng: np.random.Generator, p: BlendParams) -> np.ndarray:
    """The 'source' face: the same face, re-coloured, re-sharpened and slightly moved."""
    h, w = face.shape[:2]
    src: np.ndarray = face.astype(np.float32)
    src = src * rng.uniform(0.85, 1.15) + rng.uniform(-18, 18)  # contrast, brightness
    if src.ndim == 3:
        src += rng.uniform(-12, 12, size=(1, 1, src.shape[2]))  # colour shift per channel
    if rng.random() < 0.5:
        src = cv2.GaussianBlur(src, (0, 0), rng.uniform(0.5, 1.5))
    else:
        blurred = cv2.GaussianBlur(src, (0, 0), 1.0)
        src = cv2.addWeighted(src, 1.6, blurred, -0.6, 0)  # sharpen
    scale = 1 + rng.uniform(-p.max_scale, p.max_scale)
    m = np.asarray(cv2.getRotationMatrix2D((w / 2, h / 2), 0, scale), np.float64)
    m[:, 2] += rng.uniform(-p.max_shift, p.max_shift, 2) * (w, h)
    src = cv2.warpAffine(src, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    return np.clip(src, 0, 255)


def self_blend(face: np.ndarray, rng: np.random.Generator, points: np.ndarray | None = None,
               params: BlendParams = BlendParams()) -> tuple[np.ndarray, np.ndarray]:
    """(fake, mask): `face` outside the mask, the transformed copy blended in inside it."""
    mask = face_mask(face.shape[:2], rng, points)
    ratio = rng.uniform(*params.ratio)
    alpha = (mask * ratio)[..., None] if face.ndim == 3 else mask * ratio
    src = _transformed_copy(face, rng, params)
    fake = src * alpha + face.astype(np.float32) * (1 - alpha)
    return np.clip(np.round(fake), 0, 255).astype(np.uint8), mask


def self_blended_set(real: list[np.ndarray], seed: int,
                     points: list[np.ndarray | None] | None = None
                     ) -> tuple[list[np.ndarray], np.ndarray]:
    """Each real face and one self-blended fake of it: images and labels (0 real, 1 fake),
    balanced by construction. With `points` (each face's landmarks, or None), the blend mask
    is their hull, as in the SBI paper; else the ellipse."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i, face in enumerate(real):
        images.append(face)
        labels.append(0)
        images.append(self_blend(face, rng, points[i] if points else None)[0])
        labels.append(1)
    return images, np.array(labels, np.int64)
