"""`facelens faces add | list | remove`: enrol the people the house knows, on the device.

Each photo must show exactly one face (faces less than half the largest one's width, in the
background, are ignored), large, sharp and frontal enough to be a good sample; every refused
photo gets one line saying why, and a run where every photo is refused changes nothing. Only
embeddings are kept (identity.gallery_path), never the photos.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2

from facelens.edge.analyse.base import FaceSample
from facelens.edge.analyse.gallery import Gallery, check_name
from facelens.edge.analyse.identity import open_embedder
from facelens.edge.config import Config, ConfigError
from facelens.edge.detect import DETECTORS

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})


@dataclass
class Enrolment:
    accepted: list[Path] = field(default_factory=list)
    refused: list[tuple[Path, str]] = field(default_factory=list)


def photos(paths: list[Path]) -> list[Path]:
    """The files given, and the images in the folders given (a `facelens collect` folder)."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(p)
    return out


def add(cfg: Config, name: str, paths: list[Path]) -> Enrolment:
    """Embed each usable photo of `name` and add them to the gallery (unless none was)."""
    check_name(name)
    embedder = open_embedder(cfg)
    if embedder is None:
        raise ConfigError("identity.model is empty: known faces are off")
    detector = DETECTORS[cfg.detector.kind](cfg)
    ic = cfg.identity
    result, vectors = Enrolment(), []
    for path in photos(paths):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
        if image is None:
            result.refused.append((path, "not a file OpenCV can read as an image"
                                   if path.exists() else "no such file"))
            continue
        faces = detector.detect(image)
        if not faces:
            result.refused.append((path, "no face found"))
            continue
        largest = max(f.width for f in faces)
        faces = [f for f in faces if f.width >= 0.5 * largest]
        if len(faces) > 1:
            result.refused.append((path, f"{len(faces)} faces: a photo must show one person"))
            continue
        sample = FaceSample(image, faces[0], cfg.detector.crop_margin, 1, 1)
        if len(sample.detection.keypoints) < 4:
            result.refused.append((path, f"detector.kind {cfg.detector.kind!r} gives no eye, "
                                   "nose and mouth keypoints to align the face"))
        elif sample.size < ic.min_face_px:
            result.refused.append((path, f"the face is {sample.size:.0f} px, smaller than "
                                   f"identity.min_face_px ({ic.min_face_px})"))
        elif sample.sharpness < ic.min_sharpness:
            result.refused.append((path, f"the face is too blurred (sharpness "
                                   f"{sample.sharpness:.0f} < {ic.min_sharpness:g})"))
        elif sample.frontality < ic.min_frontality:
            result.refused.append((path, f"the face is turned away (frontality "
                                   f"{sample.frontality:.2f} < {ic.min_frontality:g})"))
        else:
            vectors.append(embedder.embed(image, faces[0].keypoints))
            result.accepted.append(path)
    if not vectors:
        return result  # nothing usable: nothing changes
    gallery = Gallery.load(ic.gallery_path, embedder.manifest.sha256)
    gallery.add(name, vectors)
    gallery.save(ic.gallery_path)
    return result


def listing(cfg: Config) -> dict[str, int]:
    """Enrolled people and how many photos each has."""
    embedder = open_embedder(cfg)
    if embedder is None:
        raise ConfigError("identity.model is empty: known faces are off")
    gallery = Gallery.load(cfg.identity.gallery_path, embedder.manifest.sha256)
    return {n: len(v) for n, v in sorted(gallery.people.items())}


def remove(cfg: Config, name: str) -> None:
    embedder = open_embedder(cfg)
    if embedder is None:
        raise ConfigError("identity.model is empty: known faces are off")
    gallery = Gallery.load(cfg.identity.gallery_path, embedder.manifest.sha256)
    gallery.remove(name)
    gallery.save(cfg.identity.gallery_path)


