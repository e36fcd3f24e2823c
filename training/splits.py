"""Train / validation / test splits: the published ones kept, the rest stratified and seeded."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facelens.edge.contract import AUTHENTICITY_LABELS, FER2013_LABELS
from facelens.workstation.datasets import DatasetError, FaceSet, read_fer2013_csv, read_image_folder


def stratified_split(labels: np.ndarray, fraction: float, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, split off): `fraction` of every class goes to the second part."""
    rng = np.random.default_rng(seed)
    kept, split = [], []
    for k in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == k))
        n = round(len(idx) * fraction)
        if len(idx) > 1:
            n = min(max(n, 1), len(idx) - 1)
        split += list(idx[:n])
        kept += list(idx[n:])
    return np.array(sorted(kept)), np.array(sorted(split))


def emotion_splits(path: str | Path, seed: int = 0, val_fraction: float = 0.1
                   ) -> dict[str, FaceSet]:
    """FER-2013 as published. The CSV: Training / PublicTest (validation) / PrivateTest
    (test). The folder layout (train/<class>/, test/<class>/): test as is, validation a
    stratified part of train, since that layout has none."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        every = read_fer2013_csv(path)
        usage = np.array([s.rsplit(":", 1)[1] for s in every.sources])
        if not (usage == "Training").any():
            raise DatasetError(f"{path}: no rows with Usage 'Training'")
        out = {"train": every.subset(np.flatnonzero(usage == "Training"))}
        for name, split in (("val", "PublicTest"), ("test", "PrivateTest")):
            idx = np.flatnonzero(usage == split)
            if len(idx):
                out[name] = every.subset(idx)
        if "val" not in out:
            keep, val = stratified_split(out["train"].y, val_fraction, seed)
            out["train"], out["val"] = out["train"].subset(keep), out["train"].subset(val)
        return out
    if not (path / "train").is_dir():
        raise DatasetError(f"{path}: expected fer2013.csv or a folder with train/<class>/ "
                           f"(and test/<class>/), classes {', '.join(FER2013_LABELS)}")
    train = read_image_folder(path / "train", FER2013_LABELS)
    keep, val = stratified_split(train.y, val_fraction, seed)
    out = {"train": train.subset(keep), "val": train.subset(val)}
    if (path / "test").is_dir():
        out["test"] = read_image_folder(path / "test", FER2013_LABELS)
    return out


def authenticity_splits(path: str | Path, seed: int = 0, test_fraction: float = 0.2
                        ) -> dict[str, FaceSet]:
    """real/ and fake/ folders, split 80/20 per class; the 20 % is validation and test."""
    faces = read_image_folder(path, AUTHENTICITY_LABELS)
    counts = np.bincount(faces.y, minlength=2)
    if counts.min() == 0:
        missing = AUTHENTICITY_LABELS[int(np.argmin(counts))]
        raise DatasetError(f"{path}: no images in {missing}/ (use --self-blend to make fakes "
                           "from real faces)")
    keep, held = stratified_split(faces.y, test_fraction, seed)
    return {"train": faces.subset(keep), "val": faces.subset(held)}
