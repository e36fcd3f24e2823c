"""BlazeFace decoding, NMS and tiling against hand-checked numbers, then on real photos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from demo import scenes
from facelens.edge.detect.base import crop_box, iou
from facelens.edge.detect.blazeface import (
    BlazeFaceDetector,
    decode,
    make_anchors,
    tile_windows,
    weighted_nms,
)
from facelens.edge.detect.haar import HaarDetector
from facelens.edge.runtime.interpreter import open_model

SHORT = [(8, 2), (16, 6)]


def test_short_range_anchors_match_mediapipe_layout():
    a = make_anchors(SHORT, 128, 128)
    assert a.shape == (896, 2)
    # Stride 8: 16×16 cells, 2 anchors each, row-major, centres at (i + 0.5) / 16.
    assert a[0].tolist() == pytest.approx([0.5 / 16, 0.5 / 16])
    assert a[1].tolist() == a[0].tolist()
    assert a[2].tolist() == pytest.approx([1.5 / 16, 0.5 / 16])
    assert a[32].tolist() == pytest.approx([0.5 / 16, 1.5 / 16])  # second row
    # Stride 16: 8×8 cells, 6 anchors each, after the 512 stride-8 anchors.
    assert a[512].tolist() == pytest.approx([0.5 / 8, 0.5 / 8])
    assert a[517].tolist() == pytest.approx([0.5 / 8, 0.5 / 8])
    assert a[518].tolist() == pytest.approx([1.5 / 8, 0.5 / 8])
    assert a[-1].tolist() == pytest.approx([7.5 / 8, 7.5 / 8])


def test_full_range_anchors():
    a = make_anchors([(4, 1)], 192, 192)
    assert a.shape == (2304, 2)
    assert a[49].tolist() == pytest.approx([1.5 / 48, 1.5 / 48])


def test_decode_turns_pixel_offsets_into_boxes_around_the_anchor():
    anchors = make_anchors(SHORT, 128, 128)
    reg = np.zeros((896, 16), np.float32)
    logits = np.full((896, 1), -10.0, np.float32)
    k = 2 * (16 * 5 + 8)  # the first anchor of row 5, column 8: centre (8.5/16, 5.5/16)
    reg[k, :4] = [6.4, -12.8, 32.0, 25.6]  # centre offset (+0.05, -0.1), size (0.25, 0.2)
    reg[k, 4:6] = [-12.8, 0.0]  # the first keypoint 0.1 left of the anchor
    logits[k] = 2.0
    boxes, scores, kps = decode(reg, logits, anchors, 128, 128, 0.5)
    cx, cy = 8.5 / 16 + 0.05, 5.5 / 16 - 0.1
    assert boxes.tolist() == [pytest.approx([cx - 0.125, cy - 0.1, cx + 0.125, cy + 0.1])]
    assert scores.tolist() == pytest.approx([1 / (1 + np.exp(-2.0))])
    assert kps[0, 0].tolist() == pytest.approx([8.5 / 16 - 0.1, 5.5 / 16])


def test_decode_drops_low_scores_and_survives_extreme_logits():
    anchors = make_anchors([(4, 1)], 192, 192)
    reg = np.zeros((2304, 16), np.float32)
    logits = np.full((2304, 1), -1e9, np.float32)
    logits[7] = 1e9
    with np.errstate(all="raise"):
        boxes, scores, _ = decode(reg, logits, anchors, 192, 192, 0.5)
    assert len(boxes) == 1 and scores[0] == pytest.approx(1.0)


def test_weighted_nms_averages_a_cluster_and_keeps_separate_faces():
    boxes = np.array([[0.0, 0.0, 10.0, 10.0],   # score 0.9
                      [2.0, 0.0, 12.0, 10.0],   # overlaps the first (IoU 0.67), score 0.6
                      [50.0, 50.0, 60.0, 60.0]],  # another face
                     np.float32)
    scores = np.array([0.9, 0.6, 0.7], np.float32)
    kps = np.zeros((3, 6, 2), np.float32)
    out = weighted_nms(boxes, scores, kps, 0.3)
    assert len(out) == 2
    box, score, _ = out[0]
    assert score == pytest.approx(0.9)
    # Score-weighted mean: x1 = (0 * 0.9 + 2 * 0.6) / 1.5 = 0.8
    assert box.tolist() == pytest.approx([0.8, 0.0, 10.8, 10.0])
    assert out[1][0].tolist() == pytest.approx([50, 50, 60, 60])


def test_tiles_cover_the_frame_with_the_asked_overlap():
    wins = tile_windows(640, 480, 3, 2, 0.25)
    assert (wins[0].w, wins[0].h) == (640, 480) and not any(wins[0].internal)
    tiles = wins[1:]
    assert len(tiles) == 6
    covered = np.zeros((480, 640), bool)
    for t in tiles:
        covered[t.y0:t.y0 + t.h, t.x0:t.x0 + t.w] = True
    assert covered.all()
    assert tiles[0].w == 256 and tiles[1].x0 < tiles[0].x0 + tiles[0].w - 0.2 * 256
    assert tiles[0].internal == (False, False, True, True)
    assert tiles[4].internal == (True, True, True, False)


def test_crop_box_is_square_expanded_and_clamped():
    assert crop_box((100, 100, 140, 150), 0.25, 640, 480) == (83, 88, 158, 163)
    x1, y1, x2, y2 = crop_box((0, 0, 30, 30), 0.5, 640, 480)
    assert (x1, y1) == (0, 0) and (x2, y2) == (45, 45)
    assert crop_box((630, 470, 640, 480), 1.0, 640, 480)[2:] == (640, 480)


@pytest.fixture(scope="module")
def full_range(models_dir):
    return open_model(models_dir / "blazeface_full_range.json", edgetpu="off")


@pytest.mark.parametrize("manifest", ["blazeface_full_range", "blazeface_short_range"])
def test_real_face_is_found_in_frame_coordinates(models_dir, manifest):
    """The astronaut pasted off-centre into a wide frame: letterboxing must be undone."""
    det = BlazeFaceDetector(open_model(models_dir / f"{manifest}.json", edgetpu="off"),
                            tiles=(1, 1))
    canvas = scenes.background(960, 480)
    truth = scenes.paste_face(canvas, scenes.astronaut(), 600, 150, 200)
    faces = det.detect(canvas)
    assert len(faces) == 1
    assert iou(faces[0].box, truth) > 0.6
    eyes = faces[0].keypoints[:2]
    assert all(truth[0] < x < truth[2] and truth[1] < y < truth[1] + 0.6 * 200 for x, y in eyes)


def test_no_face_in_a_faceless_photo(full_range):
    from skimage import data

    det = BlazeFaceDetector(full_range, tiles=(3, 2))
    for img in (scenes.background(), cv2.cvtColor(data.chelsea(), cv2.COLOR_RGB2BGR)):
        assert det.detect(img) == []


def test_tiles_find_small_faces_the_whole_frame_misses(full_range):
    canvas = scenes.background()
    truth = [scenes.paste_face(canvas, scenes.astronaut(), x, y, 32)
             for x, y in ((60, 60), (300, 220), (520, 380))]
    whole = BlazeFaceDetector(full_range, tiles=(1, 1)).detect(canvas)
    tiled = BlazeFaceDetector(full_range, tiles=(3, 2)).detect(canvas)
    assert sum(any(iou(t, f.box) > 0.3 for f in whole) for t in truth) == 0
    assert sum(any(iou(t, f.box) > 0.3 for f in tiled) for t in truth) == 3
    assert len(tiled) == 3  # no duplicates from overlapping tiles


def test_a_face_straddling_tile_edges_is_reported_once(full_range):
    canvas = scenes.background()
    truth = scenes.paste_face(canvas, scenes.astronaut(), 270, 190, 120)  # across the middle
    faces = BlazeFaceDetector(full_range, tiles=(3, 2)).detect(canvas)
    assert len(faces) == 1 and iou(faces[0].box, truth) > 0.5


def test_haar_fallback_finds_an_upright_frontal_face():
    canvas = scenes.background()
    truth = scenes.paste_face(canvas, scenes.astronaut(), 250, 150, 110)
    faces = HaarDetector().detect(canvas)
    assert len(faces) == 1 and iou(faces[0].box, truth) > 0.4
