"""MediaPipe BlazeFace: SSD anchors, box decoding, weighted NMS, letterboxing and tiling.

The models' outputs are raw: per anchor, 16 regressors (box centre and size, then six keypoints,
as offsets in input pixels from the anchor centre) and one logit. This module turns them into
boxes in frame coordinates, following MediaPipe's own graph (SsdAnchorsCalculator with fixed
anchor size, TensorsToDetectionsCalculator, weighted non-maximum suppression).

A face of 30 px in a 640 px frame is 9 px once the frame is squeezed into 192 px, below what the
model resolves; overlapping tiles give small faces more input pixels at the cost of one model
run per tile. The whole frame is always run too, for faces larger than a tile's overlap.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from facelens.edge.contract import DETECTION_TASK, convert_colour, normalize
from facelens.edge.detect.base import Box, Detection, iou_matrix, overlaps
from facelens.edge.runtime.interpreter import TFLiteModel
from facelens.edge.runtime.stock_models import open_configured

if TYPE_CHECKING:
    from facelens.edge.config import Config

NUM_KEYPOINTS = 6


def make_anchors(layers: list[tuple[int, int]], height: int, width: int) -> np.ndarray:
    """Anchor centres (N×2, normalised x, y) for [(stride, anchors per cell), ...], in the
    order the model emits them: layer by layer, row by row, column by column."""
    out = []
    for stride, per_cell in layers:
        rows, cols = height // stride, width // stride
        ys, xs = np.meshgrid((np.arange(rows) + 0.5) / rows, (np.arange(cols) + 0.5) / cols,
                             indexing="ij")
        centres = np.stack([xs.ravel(), ys.ravel()], axis=1)
        out.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(out).astype(np.float32)


def decode(regressors: np.ndarray, logits: np.ndarray, anchors: np.ndarray, input_w: int,
           input_h: int, min_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (x1, y1, x2, y2), scores and keypoints, normalised to the model input, of the
    anchors scoring at least `min_score`."""
    # float32 exp overflows past ~88, hence the clip (MediaPipe clips at 100 in float64)
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits.reshape(-1), -80.0, 80.0)))
    keep = scores >= min_score
    raw, anc, scores = regressors.reshape(-1, 16)[keep], anchors[keep], scores[keep]
    scale = np.array([input_w, input_h], np.float32)
    centre = raw[:, 0:2] / scale + anc
    size = raw[:, 2:4] / scale
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    kps = raw[:, 4:4 + 2 * NUM_KEYPOINTS].reshape(-1, NUM_KEYPOINTS, 2) / scale + anc[:, None, :]
    return boxes, scores, kps


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray,
                 iou_threshold: float) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """MediaPipe's weighted NMS: each cluster of overlapping boxes becomes their
    score-weighted mean, with the best score of the cluster. Steadier than hard NMS, which
    makes boxes jitter between anchors from frame to frame."""
    order = np.argsort(-scores)
    boxes, scores, keypoints = boxes[order], scores[order], keypoints[order]
    remaining = np.ones(len(boxes), bool)
    ious = iou_matrix(boxes, boxes)
    out = []
    for i in range(len(boxes)):
        if not remaining[i]:
            continue
        members = remaining & (ious[i] > iou_threshold)
        members[i] = True
        w = scores[members][:, None]
        box = (boxes[members] * w).sum(0) / w.sum()
        kps = (keypoints[members] * w[:, :, None]).sum(0) / w.sum()
        out.append((box, float(scores[i]), kps))
        remaining &= ~members
    return out


@dataclass(frozen=True)
class Window:
    """A region of the frame fed to the model, and how it was letterboxed."""

    x0: int
    y0: int
    w: int
    h: int
    internal: tuple[bool, bool, bool, bool]  # left, top, right, bottom edges inside the frame

    @property
    def box(self) -> Box:
        return (float(self.x0), float(self.y0), float(self.x0 + self.w), float(self.y0 + self.h))


def tile_windows(frame_w: int, frame_h: int, cols: int, rows: int,
                 overlap: float) -> list[Window]:
    """The whole frame, then cols × rows tiles that overlap by `overlap` of a tile."""
    windows = [Window(0, 0, frame_w, frame_h, (False, False, False, False))]
    if cols == 1 and rows == 1:
        return windows
    tw = int(np.ceil(frame_w / (cols - (cols - 1) * overlap)))
    th = int(np.ceil(frame_h / (rows - (rows - 1) * overlap)))
    for r in range(rows):
        for c in range(cols):
            x0 = 0 if cols == 1 else round(c * (frame_w - tw) / (cols - 1))
            y0 = 0 if rows == 1 else round(r * (frame_h - th) / (rows - 1))
            windows.append(Window(x0, y0, tw, th,
                                  (x0 > 0, y0 > 0, x0 + tw < frame_w, y0 + th < frame_h)))
    return windows


def region_window(region: Box, frame_w: int, frame_h: int) -> Window:
    """A region as a window: whole pixels, inside the frame; its edges inside the frame are
    internal (a face cut there is whole in a neighbouring region or the next full scan)."""
    x0, y0 = max(0, int(region[0])), max(0, int(region[1]))
    x1, y1 = min(frame_w, int(np.ceil(region[2]))), min(frame_h, int(np.ceil(region[3])))
    w, h = max(1, x1 - x0), max(1, y1 - y0)
    return Window(x0, y0, w, h, (x0 > 0, y0 > 0, x0 + w < frame_w, y0 + h < frame_h))


class BlazeFaceDetector:
    """Runs a BlazeFace model over the whole frame and optional overlapping tiles."""

    name = "blazeface"

    def __init__(self, model: TFLiteModel, *, min_score: float = 0.5, nms_iou: float = 0.3,
                 tiles: tuple[int, int] = (1, 1), tile_overlap: float = 0.25,
                 min_face_px: int = 12) -> None:
        spec = model.manifest.input
        self.model = model
        self.name = model.manifest.name
        self.backend = model.backend
        self.spec = spec
        self.anchors = make_anchors([(a.stride, a.per_cell) for a in model.manifest.output.anchors],
                                    spec.height, spec.width)
        # Outputs are told apart by shape, not by name: the two stock models name them
        # differently (regressors/classificators vs Identity/Identity_1).
        dets = model.output_details
        self._reg_idx = next(i for i, d in enumerate(dets) if d["shape"][-1] == 16)
        self._logit_idx = 1 - self._reg_idx
        self.min_score, self.nms_iou = min_score, nms_iou
        self.tiles, self.tile_overlap, self.min_face_px = tiles, tile_overlap, min_face_px
        self.last_latency_ms = 0.0
        self.last_runs = 0
        #: Runs the regions instead, when set (a smaller model: its faces are large there).
        self.regions: BlazeFaceDetector | None = None

    def _letterbox(self, image: np.ndarray) -> tuple[np.ndarray, float, float, float]:
        """Fit the image into the square input without distortion; returns (tensor, scale,
        pad_x, pad_y) so boxes can be mapped back."""
        s_w, s_h = self.spec.width, self.spec.height
        h, w = image.shape[:2]
        scale = min(s_w / w, s_h / h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        resized = cv2.resize(image, (nw, nh),
                             interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        canvas = np.zeros((s_h, s_w, 3), np.uint8)
        px, py = (s_w - nw) // 2, (s_h - nh) // 2
        canvas[py:py + nh, px:px + nw] = convert_colour(resized, self.spec.colour)
        tensor = normalize(canvas[None], self.spec, self.model.quantization)
        return tensor, scale, px, py

    def _run_window(self, image: np.ndarray, win: Window) -> tuple[np.ndarray, ...]:
        tensor, scale, px, py = self._letterbox(image[win.y0:win.y0 + win.h, win.x0:win.x0 + win.w])
        outs = self.model.run(tensor)
        boxes, scores, kps = decode(outs[self._reg_idx], outs[self._logit_idx], self.anchors,
                                    self.spec.width, self.spec.height, self.min_score)
        size = np.array([self.spec.width, self.spec.height], np.float32)
        pad = np.array([px, py], np.float32)
        origin = np.array([win.x0, win.y0], np.float32)
        boxes = boxes.reshape(-1, 2, 2) * size
        boxes = ((boxes - pad) / scale + origin).reshape(-1, 4)
        kps = (kps * size - pad) / scale + origin
        if len(boxes) and any(win.internal):
            # A face cut by an inner tile edge is whole in a neighbouring tile (or in the
            # whole-frame pass); its truncated box here would survive NMS as a second face.
            eps = 2.0
            cut = np.zeros(len(boxes), bool)
            left, top, right, bottom = win.internal
            if left:
                cut |= boxes[:, 0] <= win.x0 + eps
            if top:
                cut |= boxes[:, 1] <= win.y0 + eps
            if right:
                cut |= boxes[:, 2] >= win.x0 + win.w - eps
            if bottom:
                cut |= boxes[:, 3] >= win.y0 + win.h - eps
            boxes, scores, kps = boxes[~cut], scores[~cut], kps[~cut]
        return boxes, scores, kps

    def scan_tiles(self, frame_w: int, frame_h: int,
                   tiles: tuple[int, int] | None = None) -> list[Box]:
        """The tiles a full scan runs on besides the whole frame."""
        return [t.box for t in tile_windows(frame_w, frame_h, *(tiles or self.tiles),
                                            self.tile_overlap)[1:]]

    def detect(self, image: np.ndarray, tiles: tuple[int, int] | None = None,
               where: Sequence[Box] | None = None) -> list[Detection]:
        """A full scan: the whole frame and the configured tiles (or a camera's own), or
        only the tiles that overlap `where`."""
        h, w = image.shape[:2]
        windows = tile_windows(w, h, *(tiles or self.tiles), self.tile_overlap)
        if where is not None:
            windows = windows[:1] + [t for t in windows[1:]
                                     if any(overlaps(t.box, b) for b in where)]
        return self._detect_windows(image, windows)

    def detect_regions(self, image: np.ndarray, regions: Sequence[Box]) -> list[Detection]:
        """Only these regions of the frame (where something moved, where faces are), each
        scaled to the model's input: a small region gives its faces more input pixels. With
        a region detector (the short-range model), it does this work."""
        if self.regions is not None:
            faces = self.regions.detect_regions(image, regions)
            self.last_runs, self.last_latency_ms = self.regions.last_runs, \
                self.regions.last_latency_ms
            return faces
        h, w = image.shape[:2]
        return self._detect_windows(image, [region_window(r, w, h) for r in regions])

    def _detect_windows(self, image: np.ndarray, windows: list[Window]) -> list[Detection]:
        t0 = time.perf_counter()
        h, w = image.shape[:2]
        self.last_runs = len(windows)
        if not windows:
            self.last_latency_ms = 0.0
            return []
        parts = [self._run_window(image, win) for win in windows]
        boxes = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts])
        kps = np.concatenate([p[2] for p in parts])
        faces = []
        for box, score, kp in weighted_nms(boxes, scores, kps, self.nms_iou):
            box = np.clip(box, 0, [w, h, w, h])
            if min(box[2] - box[0], box[3] - box[1]) < self.min_face_px:
                continue
            x1, y1, x2, y2 = (float(v) for v in box)
            faces.append(Detection(box=(x1, y1, x2, y2), score=score,
                                   keypoints=tuple((float(x), float(y)) for x, y in kp)))
        self.last_latency_ms = (time.perf_counter() - t0) * 1000
        return faces


def build(cfg: Config) -> BlazeFaceDetector:
    """The registry's builder: the [detector] section's model, thresholds and tiles."""
    d = cfg.detector
    model = open_configured("detector.model", d.model, cfg.runtime, task=DETECTION_TASK)
    detector = BlazeFaceDetector(model, min_score=d.min_score, nms_iou=d.nms_iou,
                                 tiles=d.tiles, tile_overlap=d.tile_overlap,
                                 min_face_px=d.min_face_px)
    if d.region_model and d.region_model != d.model:
        small = open_configured("detector.region_model", d.region_model, cfg.runtime,
                                task=DETECTION_TASK)
        detector.regions = BlazeFaceDetector(small, min_score=d.min_score, nms_iou=d.nms_iou,
                                             min_face_px=d.min_face_px)
        detector.backend += f"; regions: {small.manifest.name}"
    return detector
