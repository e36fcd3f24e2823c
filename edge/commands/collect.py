"""`facelens collect`: the owner's own real faces, for training on the workstation.

Self-blended authenticity training needs only real faces, and the camera sees real faces every
day. This runs the pipeline on the configured source and keeps, per track, the few best face
crops: large, sharp and frontal (judged from the detector's eye and nose keypoints), never two
near-identical ones. Each crop (PNG, with the classifier's margin) has a JSON sidecar: track,
time, box, keypoints, frame size and the quality figures. It runs only when the owner runs it
— never from the service — and writes only to `--out`; delete that folder to delete it all.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from facelens.edge.analyse.base import FaceSample
from facelens.edge.camera.pipeline import Pipeline
from facelens.edge.config import Config
from facelens.edge.events import iso_time
from facelens.edge.sources import open_camera

log = logging.getLogger(__name__)

#: Crops kept per track, at most.
PER_TRACK = 3
#: Two crops of one track closer than this (mean absolute grey difference at 32×32, 0-255)
#: are the same picture twice.
SAME_PICTURE = 6.0


@dataclass
class Candidate:
    score: float
    image: np.ndarray
    thumb: np.ndarray
    meta: dict


@dataclass
class TrackCrops:
    kept: list[Candidate] = field(default_factory=list)

    def offer(self, cand: Candidate) -> None:
        """Keep the best PER_TRACK, never two alike."""
        for i, k in enumerate(self.kept):
            if float(np.mean(np.abs(k.thumb - cand.thumb))) < SAME_PICTURE:
                if cand.score > k.score:
                    self.kept[i] = cand
                return
        self.kept.append(cand)
        self.kept.sort(key=lambda c: -c.score)
        del self.kept[PER_TRACK:]


def collect(cfg: Config, out: Path, *, max_crops: int = 200,
            min_face_px: int = 40) -> dict[str, int]:
    """Run the source through the pipeline and write the best crops of each track to `out`."""
    out.mkdir(parents=True, exist_ok=True)
    pipeline = Pipeline(cfg)
    reader = open_camera(cfg.source)
    reader.start()
    tracks: dict[str, TrackCrops] = {}
    frames = 0
    try:
        while (frame := reader.get(timeout=5.0)) is not None:
            frames += 1
            pipeline.process(frame)
            boxes = {tr.box: tr.track_id for tr in pipeline.tracker.tracks if tr.confirmed}
            for det in pipeline.last_faces:
                track_id = boxes.get(det.box)
                if track_id is None or min(det.width, det.height) < min_face_px:
                    continue
                sample = FaceSample(frame.image, det, cfg.detector.crop_margin, 1, frames)
                face, grey = sample.crop, sample.grey
                sharp, front, score = sample.sharpness, sample.frontality, sample.quality
                meta = {"track_id": track_id, "time": iso_time(frame.wall),
                        "frame_index": frame.index,
                        "box": [round(v, 1) for v in det.box],
                        "keypoints": [[round(x, 1), round(y, 1)] for x, y in det.keypoints],
                        "frame_size": [frame.image.shape[1], frame.image.shape[0]],
                        "detection_score": round(det.score, 4), "sharpness": round(sharp, 1),
                        "frontal": round(front, 3), "quality": round(score, 4)}
                thumb = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA)
                tracks.setdefault(track_id, TrackCrops()).offer(
                    Candidate(score, face, thumb.astype(np.float32), meta))
            if sum(len(t.kept) for t in tracks.values()) >= max_crops * 2:
                break  # enough to choose from
    finally:
        reader.close()
    written = 0
    for track_id, t in sorted(tracks.items()):
        for n, cand in enumerate(t.kept):
            if written >= max_crops:
                break
            stem = out / f"{track_id}_{n}"
            cv2.imwrite(str(stem.with_suffix(".png")), cand.image)
            stem.with_suffix(".json").write_text(json.dumps(cand.meta) + "\n")
            written += 1
    log.info("collected %d face crops of %d tracks from %d frames into %s", written,
             len(tracks), frames, out)
    return {"frames": frames, "tracks": len(tracks), "crops": written}
