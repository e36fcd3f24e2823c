"""One frame's path: detector → classifiers → tracker. Built from the config, owns no loop.

Kept apart from the daemon so that tests, benchmarks and the demo run exactly the code the
service runs, frame by frame, without threads or signals.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import cv2

from facelens.edge.classify import Classifier
from facelens.edge.config import Config
from facelens.edge.contract import ManifestError
from facelens.edge.detect.base import Detector, crop
from facelens.edge.detect.blazeface import BlazeFaceDetector
from facelens.edge.detect.haar import HaarDetector
from facelens.edge.events import FaceEvent, Snapshot
from facelens.edge.models import resolve_manifest
from facelens.edge.runtime import open_model
from facelens.edge.sources.base import Frame
from facelens.edge.track import Observation, Tracker

log = logging.getLogger(__name__)


@dataclass
class StageTimes:
    """Milliseconds per stage: the last frame, means over all frames, and means over the
    current reporting window (reset by `take_window`)."""

    last: dict[str, float] = field(default_factory=dict)
    total: dict[str, float] = field(default_factory=dict)
    frames: int = 0
    window: dict[str, float] = field(default_factory=dict)
    window_frames: int = 0

    def add(self, times: dict[str, float]) -> None:
        self.last = times
        self.frames += 1
        self.window_frames += 1
        for k, v in times.items():
            self.total[k] = self.total.get(k, 0.0) + v
            self.window[k] = self.window.get(k, 0.0) + v

    def mean(self) -> dict[str, float]:
        return {k: v / max(self.frames, 1) for k, v in self.total.items()}

    def take_window(self) -> tuple[int, dict[str, float]]:
        """(frames, mean ms per stage) since the previous call."""
        n = self.window_frames
        means = {k: round(v / n, 2) for k, v in self.window.items()} if n else {}
        self.window, self.window_frames = {}, 0
        return n, means


def _open_stage(key: str, ref: str, cfg: Config):
    """Open a model named by config key `key`; errors say which key pointed at what."""
    try:
        path = resolve_manifest(ref, cfg.runtime.models_dir)
        return open_model(path, edgetpu=cfg.runtime.edgetpu, num_threads=cfg.runtime.threads)
    except ManifestError as exc:
        raise ManifestError(f"{key} = {ref!r}: {exc}") from None


def build_detector(cfg: Config) -> Detector:
    d = cfg.detector
    if d.kind == "haar":
        return HaarDetector(min_face_px=d.min_face_px)
    model = _open_stage("detector.model", d.model, cfg)
    if model.manifest.task != "face_detection":
        raise ManifestError(f"detector.model = {d.model!r} is a {model.manifest.task} model, "
                            "not a face detector")
    return BlazeFaceDetector(model, min_score=d.min_score, nms_iou=d.nms_iou, tiles=d.tiles,
                             tile_overlap=d.tile_overlap, min_face_px=d.min_face_px)


def build_classifier(cfg: Config, section: str) -> Classifier | None:
    ref = getattr(cfg, section).model
    if ref is None:
        return None
    model = _open_stage(f"{section}.model", ref, cfg)
    if model.manifest.task != section:
        raise ManifestError(f"{section}.model = {ref!r} is a {model.manifest.task} model, "
                            f"not an {section} model")
    return Classifier(model)


class Pipeline:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.detector = build_detector(cfg)
        self.emotion = build_classifier(cfg, "emotion")
        self.authenticity = build_classifier(cfg, "authenticity")
        if self.authenticity is None:
            log.info("no authenticity model configured: events carry authenticity = null")
        self.tracker = Tracker(cfg.tracker,
                               emotion_labels=self.emotion.labels if self.emotion else None,
                               fake_threshold=cfg.authenticity.threshold,
                               device=cfg.service.device_id, camera=cfg.source.name,
                               authenticity_enabled=self.authenticity is not None)
        self.times = StageTimes()
        self.faces_last = 0

    def describe(self) -> dict[str, str]:
        """Which model runs where, for `facelens check`, logs and stats."""
        out = {"detector": f"{self.detector.name} on {self.detector.backend}"}
        for name in ("emotion", "authenticity"):
            clf = getattr(self, name)
            out[name] = f"{clf.name} on {clf.backend}" if clf else "off (no model configured)"
        return out

    def process(self, frame: Frame) -> list[FaceEvent]:
        t0 = time.perf_counter()
        faces = self.detector.detect(frame.image)
        t_det = (time.perf_counter() - t0) * 1000
        t_emo = t_auth = 0.0
        margin = self.cfg.detector.crop_margin
        observations = []
        for det in faces:
            face = crop(frame.image, det.box, margin)
            emotion = fake = None
            if self.emotion is not None:
                emotion = self.emotion.classify(face)
                t_emo += self.emotion.last_latency_ms
            if self.authenticity is not None:
                probs = self.authenticity.classify(face)
                fake = float(probs[self.authenticity.labels.index("fake")]
                             if "fake" in self.authenticity.labels else probs[-1])
                t_auth += self.authenticity.last_latency_ms
            observations.append(Observation(det, emotion, fake))
        h, w = frame.image.shape[:2]
        events = self.tracker.update(observations, frame.t, frame.wall, (w, h))
        self.faces_last = len(faces)
        self.times.add({"detector": t_det, "emotion": t_emo, "authenticity": t_auth,
                        "frame": (time.perf_counter() - t0) * 1000})
        return events

    def finish(self, frame_t: float, wall: float) -> list[FaceEvent]:
        return self.tracker.finish(frame_t, wall)


def snapshots(frame: Frame, events: list[FaceEvent], mode: str,
              margin: float) -> list[Snapshot]:
    """JPEGs for the `new` events of this frame: the face crop, or the whole frame."""
    out = []
    for e in events:
        if e.type != "new":
            continue
        image = frame.image if mode == "frame" else crop(frame.image, e.box, margin)
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if ok:
            out.append(Snapshot(e.event_id, e.track_id, e.camera, jpeg.tobytes()))
    return out
