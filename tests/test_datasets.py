"""Data readers, splits and the self-blending generator (no TensorFlow needed)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facelens.edge.contract import FER2013_LABELS
from facelens.training.selfblend import face_mask, hull_mask, self_blend, self_blended_set
from facelens.training.splits import authenticity_splits, emotion_splits, stratified_split
from facelens.workstation.datasets import (
    DatasetError,
    read_fer2013_csv,
    read_image_folder,
    read_npy,
)
from tests import training_data as td

GOOD = " ".join(["100"] * 2304)


def csv(tmp_path, *rows, header="emotion,pixels,Usage"):
    path = tmp_path / "fer2013.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_fer_csv_rows_become_48x48_faces_with_labels(tmp_path):
    faces = read_fer2013_csv(csv(tmp_path, f"3,{GOOD},Training", f"6,{GOOD},PrivateTest"))
    assert len(faces) == 2 and faces.images[0].shape == (48, 48)
    assert faces.labels.tolist() == [3, 6] and faces.classes == FER2013_LABELS
    assert len(read_fer2013_csv(csv(tmp_path, f"3,{GOOD},Training", f"6,{GOOD},PrivateTest"),
                                usage="Training")) == 1


@pytest.mark.parametrize("row,needle", [
    (f"x,{GOOD},Training", "line 3: emotion 'x' is not an integer"),
    (f"9,{GOOD},Training", "line 3: emotion 9 is outside 0-6"),
    ("2,1 2 3,Training", "line 3: 3 pixels, expected 2304"),
    (f"2,{GOOD[:-3]}300,Training", "line 3: pixel values must be 0-255"),
    (f"2,{GOOD[:-3]}abc,Training", "line 3: pixels must be integers"),
])
def test_malformed_csv_rows_are_named(tmp_path, row, needle):
    with pytest.raises(DatasetError, match=needle):
        read_fer2013_csv(csv(tmp_path, f"0,{GOOD},Training", row))


def test_wrong_header_and_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="expected a FER-2013 header"):
        read_fer2013_csv(csv(tmp_path, f"0,{GOOD}", header="label,data"))
    with pytest.raises(DatasetError, match="not found"):
        read_fer2013_csv(tmp_path / "none.csv")


def test_published_csv_splits_are_kept(tmp_path):
    path = td.fer_csv(tmp_path / "fer.csv", per_class=20)
    splits = emotion_splits(path)
    assert {k: len(v) for k, v in splits.items()} == {"train": 7 * 14, "val": 7 * 3,
                                                      "test": 7 * 3}
    assert all(s.endswith(":Training") for s in splits["train"].sources)
    assert all(s.endswith(":PublicTest") for s in splits["val"].sources)
    assert all(s.endswith(":PrivateTest") for s in splits["test"].sources)


def test_folder_layout_keeps_test_and_carves_validation_from_train(tmp_path):
    root = td.fer_folder(tmp_path / "fer", per_class=20)
    splits = emotion_splits(root)
    assert len(splits["test"]) == 7 * 4
    assert len(splits["train"]) + len(splits["val"]) == 7 * 16
    assert set(splits["train"].sources).isdisjoint(splits["val"].sources)
    assert np.bincount(splits["val"].labels).tolist() == [2] * 7  # stratified
    (root / "train" / "contempt").mkdir()
    with pytest.raises(DatasetError, match=r"\['contempt'\] are not classes"):
        read_image_folder(root / "train", FER2013_LABELS)


def test_stratified_split_is_80_20_per_class_and_seeded():
    labels = np.array([0] * 50 + [1] * 30)
    keep, held = stratified_split(labels, 0.2, seed=3)
    assert np.bincount(labels[held]).tolist() == [10, 6]
    assert set(keep).isdisjoint(held) and len(keep) + len(held) == 80
    assert np.array_equal(held, stratified_split(labels, 0.2, seed=3)[1])


def test_authenticity_tree_splits_and_needs_both_classes(tmp_path):
    root = td.real_fake_tree(tmp_path / "rf")
    splits = authenticity_splits(root)
    assert np.bincount(splits["val"].labels).tolist() == [20, 20]
    assert np.bincount(splits["train"].labels).tolist() == [80, 80]
    for p in (root / "fake").iterdir():
        p.unlink()
    with pytest.raises(DatasetError, match="no images in fake/.*--self-blend"):
        authenticity_splits(root)


def test_npy_calibration_shape_is_checked(tmp_path):
    np.save(tmp_path / "ok.npy", np.zeros((5, 48, 48), np.uint8))
    assert len(read_npy(tmp_path / "ok.npy")) == 5
    np.save(tmp_path / "bad.npy", np.zeros((5, 48), np.uint8))
    with pytest.raises(DatasetError, match=r"got shape \(5, 48\)"):
        read_npy(tmp_path / "bad.npy")


def test_self_blend_changes_only_the_face_region():
    face = td.real_faces(3)[0]
    rng = np.random.default_rng(0)
    fake, mask = self_blend(face, rng)
    assert fake.shape == face.shape and fake.dtype == np.uint8
    assert mask.min() >= 0.0 and mask.max() <= 1.0 and mask.max() > 0.9
    outside = mask < 1e-3
    assert outside.any() and np.array_equal(fake[outside], face[outside])
    inside = mask > 0.9
    assert np.mean(np.abs(fake[inside].astype(int) - face[inside])) > 2  # visibly blended
    # Blend bounds: every pixel lies between the original and the transformed copy.
    assert fake.min() >= 0 and fake.max() <= 255


def test_face_mask_from_landmarks_is_their_hull():
    pts = np.array([[10, 10], [30, 10], [30, 40], [10, 40], [20, 25]], np.float32)
    mask = hull_mask(pts, (48, 48))
    assert mask[25, 20] == 1.0 and mask[5, 5] == 0.0 and mask[45, 45] == 0.0
    soft = face_mask((48, 48), np.random.default_rng(1), pts)
    assert soft[25, 20] > 0.9 and soft[2, 2] < 0.05


def test_self_blended_set_is_balanced_and_labelled():
    faces = td.real_faces(6)
    images, labels = self_blended_set(faces, seed=4)
    assert labels.tolist() == [0, 1] * 6
    assert all(np.array_equal(images[2 * i], faces[i]) for i in range(6))
    again, _ = self_blended_set(faces, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(images, again, strict=True))


def test_fer_folder_images_are_real_pngs(tmp_path):
    root = td.fer_folder(tmp_path / "f", per_class=2)
    img = cv2.imread(str(next((root / "train" / "happy").iterdir())), cv2.IMREAD_UNCHANGED)
    assert img.shape == (48, 48) and img.dtype == np.uint8
