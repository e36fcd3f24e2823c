"""Face datasets in the layouts people have: the FER-2013 CSV and image folders.

No TensorFlow here: the converter reads its calibration faces with these too. Images come out
as uint8 arrays (grey H×W or BGR H×W×3) and go through edge.contract.preprocess, never a copy.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from facelens.edge.contract import FER2013_LABELS
from facelens.edge.sources.images import IMAGE_SUFFIXES

FER_SIDE = 48


class DatasetError(ValueError):
    """The data is not in the expected layout; the message names the file, row or folder."""


@dataclass
class FaceSet:
    """Images with optional integer labels (indices into `classes`)."""

    images: list[np.ndarray]
    labels: np.ndarray | None
    classes: tuple[str, ...]
    sources: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def y(self) -> np.ndarray:
        """The labels of a set that must have them (training, evaluation)."""
        if self.labels is None:
            raise DatasetError(f"{len(self)} images without labels where labels are needed "
                               f"(classes {', '.join(self.classes)})")
        return self.labels

    def subset(self, index: Sequence[int] | np.ndarray) -> FaceSet:
        idx = [int(i) for i in index]
        return FaceSet([self.images[i] for i in idx],
                       None if self.labels is None else self.labels[idx], self.classes,
                       [self.sources[i] for i in idx] if self.sources else [])


def read_fer2013_csv(path: str | Path, usage: str | Sequence[str] | None = None) -> FaceSet:
    """Rows `emotion,pixels,Usage` (Usage optional); `usage` keeps only those splits."""
    path = Path(path)
    wanted = {usage} if isinstance(usage, str) else set(usage) if usage else None
    images, labels, sources = [], [], []
    if not path.is_file():
        raise DatasetError(f"FER-2013 CSV not found: {path}")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        if not {"emotion", "pixels"} <= set(header):
            raise DatasetError(f"{path}: expected a FER-2013 header 'emotion,pixels,Usage', "
                               f"got {','.join(header) or 'nothing'}")
        for row in reader:
            line = reader.line_num
            split = (row.get("Usage") or "").strip()
            if wanted is not None and split not in wanted:
                continue
            try:
                emotion = int(row["emotion"])
            except (TypeError, ValueError) as exc:
                raise DatasetError(f"{path} line {line}: emotion {row['emotion']!r} is not an "
                                   "integer 0-6") from exc
            if not 0 <= emotion < len(FER2013_LABELS):
                raise DatasetError(f"{path} line {line}: emotion {emotion} is outside 0-6")
            try:
                px = np.array((row["pixels"] or "").split(), dtype=np.int32)
            except ValueError as exc:
                raise DatasetError(f"{path} line {line}: pixels must be integers "
                                   "separated by spaces") from exc
            if px.size != FER_SIDE * FER_SIDE:
                raise DatasetError(f"{path} line {line}: {px.size} pixels, expected "
                                   f"{FER_SIDE * FER_SIDE} (48×48)")
            if px.min() < 0 or px.max() > 255:
                raise DatasetError(f"{path} line {line}: pixel values must be 0-255")
            images.append(px.astype(np.uint8).reshape(FER_SIDE, FER_SIDE))
            labels.append(emotion)
            sources.append(f"{path.name}:{line}:{split}")
    if not images:
        which = f" with Usage in {sorted(wanted)}" if wanted else ""
        raise DatasetError(f"{path}: no rows{which}")
    return FaceSet(images, np.array(labels, np.int64), FER2013_LABELS, sources)


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DatasetError(f"cannot decode image {path}")
    if image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(1, int(image.max())))
    return image


def read_image_folder(folder: str | Path, classes: Sequence[str] | None = None) -> FaceSet:
    """Every image under `folder`. With `classes`, images must sit in `<class>/` subfolders
    (the FER-2013 folder layout, `real/` and `fake/`) and get that class as label."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"image folder not found: {folder}")
    if classes is None:
        files = list_images(folder)
        if not files:
            raise DatasetError(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return FaceSet([read_image(p) for p in files], None, (),
                       [str(p.relative_to(folder)) for p in files])
    present = sorted(d.name for d in folder.iterdir() if d.is_dir())
    unknown = [d for d in present if d not in classes]
    if unknown:
        raise DatasetError(f"{folder}: subfolders {unknown} are not classes "
                           f"({', '.join(classes)})")
    images, labels, sources = [], [], []
    for k, name in enumerate(classes):
        for p in list_images(folder / name) if (folder / name).is_dir() else []:
            images.append(read_image(p))
            labels.append(k)
            sources.append(str(p.relative_to(folder)))
    if not images:
        raise DatasetError(f"{folder} holds no images in class folders "
                           f"({'/, '.join(classes)}/)")
    return FaceSet(images, np.array(labels, np.int64), tuple(classes), sources)


def read_npy(path: str | Path) -> FaceSet:
    """An N×H×W or N×H×W×C uint8 array of face crops."""
    path = Path(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    if arr.ndim not in (3, 4) or (arr.ndim == 4 and arr.shape[3] not in (1, 3)):
        raise DatasetError(f"{path}: expected N×H×W or N×H×W×(1|3) images, got shape "
                           f"{arr.shape}")
    if arr.dtype != np.uint8:
        raise DatasetError(f"{path}: expected uint8 pixels, got {arr.dtype}")
    if len(arr) == 0:
        raise DatasetError(f"{path}: holds no images")
    return FaceSet(list(arr), None, (), [f"{path.name}[{i}]" for i in range(len(arr))])


def read_faces(path: str | Path, classes: Sequence[str] | None = None) -> FaceSet:
    """A FER-2013 CSV, an .npy array, or an image folder (labelled when its subfolders are
    `classes`)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return read_fer2013_csv(path)
    if path.suffix.lower() == ".npy":
        return read_npy(path)
    if not path.exists():
        raise DatasetError(f"calibration data not found: {path}")
    if classes and path.is_dir() and any((path / c).is_dir() for c in classes):
        return read_image_folder(path, classes)
    return read_image_folder(path)
