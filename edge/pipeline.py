"""One frame's path: detector → classifier heads → tracker. Built from the config, owns no
loop.

Kept apart from the daemon so that tests, benchmarks and the demo run exactly the code the
service runs, frame by frame, without threads or signals. Which detector runs comes from the
detectors registry; which heads run comes from the config's head entries and their models'
manifests — nothing here knows what a head means.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from facelens.edge.classify import Classifier
from facelens.edge.config import Config, model_key
from facelens.edge.contract import DETECTION_TASK, ManifestError
from facelens.edge.detect import DETECTORS
from facelens.edge.detect.base import Box, Detection, Detector, crop, iou
from facelens.edge.detect.blazeface import tile_windows
from facelens.edge.events import FaceEvent, FaceView, FrameView
from facelens.edge.heads import Head, HeadRule, rules
from facelens.edge.models import open_configured
from facelens.edge.scan import Scanner, ScanPlan
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


@dataclass
class Economy:
    """What the frame economy saved, over the current reporting window: model runs per
    frame (detector windows and head classifications), the share of frames with motion, and
    full scans."""

    frames: int = 0
    detector_runs: int = 0
    head_runs: int = 0
    motion_frames: int = 0
    full_scans: int = 0

    def take_window(self) -> dict[str, float]:
        n = max(self.frames, 1)
        out = {"model_runs_per_frame": round((self.detector_runs + self.head_runs) / n, 3),
               "detector_runs_per_frame": round(self.detector_runs / n, 3),
               "motion_fraction": round(self.motion_frames / n, 3),
               "full_scans": self.full_scans}
        self.frames = self.detector_runs = self.head_runs = 0
        self.motion_frames = self.full_scans = 0
        return out


class HeadCadence:
    """Heads classify a face when it is new, when its box moved, or when they last did
    `every` frames ago; in between the tracker keeps the face's smoothed scores."""

    def __init__(self, every: int, same_box_iou: float = 0.7) -> None:
        self.every, self.same_box_iou = every, same_box_iou
        self._recent: list[tuple[Box, int]] = []  # box classified, frame number

    def due(self, box: Box, frame_no: int) -> bool:
        self._recent = [(b, n) for b, n in self._recent if frame_no - n < self.every]
        if any(iou(box, b) >= self.same_box_iou for b, _ in self._recent):
            return False
        self._recent.append((box, frame_no))
        return True


def build_detector(cfg: Config) -> Detector:
    """The detector `detector.kind` names in the registry."""
    return DETECTORS[cfg.detector.kind](cfg)


def build_heads(cfg: Config) -> list[Head]:
    """Every head whose config names a model; its manifest's task must be the head's name."""
    heads = []
    for name, hc in cfg.head_configs().items():
        if hc.model is None:
            continue
        key = model_key(name)[1]
        model = open_configured(key, hc.model, cfg.runtime)
        m = model.manifest
        if m.task != name:
            what = "face detector" if m.task == DETECTION_TASK else f"{m.task} model"
            raise ManifestError(f"{key} = {hc.model!r} is a {what}, not a {name} model "
                                f"(its manifest's task must be {name!r})")
        heads.append(Head(HeadRule(name, m.labels, m.positive_index, hc.threshold),
                          Classifier(model)))
    return heads


class Pipeline:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.detector = build_detector(cfg)
        self.heads = build_heads(cfg)
        if not any(h.name == "authenticity" for h in self.heads):
            log.info("no authenticity model configured: events carry authenticity = null")
        self.tracker = Tracker(cfg.tracker, heads=rules(self.heads),
                               device=cfg.service.device_id, camera=cfg.source.name)
        self.scanner = Scanner(cfg.scan, cfg.motion)
        self.cadence = HeadCadence(cfg.scan.heads_every_frames)
        self.times = StageTimes()
        self.economy = Economy()
        self.last_faces: list[Detection] = []
        self.frame_no = 0
        self.last_plan: ScanPlan | None = None
        self.last_detector_runs = 0
        self._tiles: tuple[tuple[int, int], list[Box]] = ((0, 0), [])  # for views

    @property
    def rules(self) -> tuple[HeadRule, ...]:
        return rules(self.heads)

    def head(self, name: str) -> Head | None:
        return next((h for h in self.heads if h.name == name), None)

    def describe(self) -> dict[str, str]:
        """Which model runs where, per stage, for `facelens check`, logs and stats."""
        out = {"detector": f"{self.detector.name} on {self.detector.backend}"}
        for name in self.cfg.head_configs():
            head = self.head(name)
            out[name] = head.describe() if head else "off (no model configured)"
        return out

    def process(self, frame: Frame) -> list[FaceEvent]:
        t0 = time.perf_counter()
        self.frame_no += 1
        plan = self.last_plan = self.scanner.plan(frame.image, frame.t, self.tracker.hints())
        t_motion = time.perf_counter()
        if plan.full:
            faces = self.detector.detect(frame.image)
        elif plan.regions:
            faces = self.detector.detect_regions(frame.image, plan.regions)
        else:
            faces = []
        eco = self.economy
        eco.frames += 1
        eco.full_scans += plan.full
        eco.motion_frames += bool(plan.motion and plan.motion.boxes)
        self.last_detector_runs = self.detector.last_runs if (plan.full or plan.regions) else 0
        eco.detector_runs += self.last_detector_runs
        times = {"motion": (t_motion - t0) * 1000,
                 "detector": (time.perf_counter() - t_motion) * 1000}
        times.update({name: 0.0 for name in self.cfg.head_configs()})
        margin = self.cfg.detector.crop_margin
        observations = []
        for det in faces:
            scores = {}
            if self.heads and self.cadence.due(det.box, self.frame_no):
                face = crop(frame.image, det.box, margin)
                for head in self.heads:
                    scores[head.name] = head.classifier.classify(face)
                    times[head.name] += head.classifier.last_latency_ms
                    eco.head_runs += 1
            observations.append(Observation(det, scores))
        h, w = frame.image.shape[:2]
        events = self.tracker.update(observations, frame.t, frame.wall, (w, h))
        self.last_faces = faces
        times["frame"] = (time.perf_counter() - t0) * 1000
        self.times.add(times)
        return events

    def view(self, frame: Frame) -> FrameView:
        """What this frame looked like to the pipeline, for outputs that show pictures."""
        plan = self.last_plan
        h, w = frame.image.shape[:2]
        if self._tiles[0] != (w, h):
            d = self.cfg.detector
            self._tiles = ((w, h), [(float(t.x0), float(t.y0), float(t.x0 + t.w),
                                     float(t.y0 + t.h))
                                    for t in tile_windows(w, h, *d.tiles, d.tile_overlap)[1:]])
        faces = [FaceView(tr.track_id, tr.box, tr.confirmed, self.tracker.labels(tr))
                 for tr in self.tracker.tracks]
        return FrameView(frame.image, frame.wall, faces,
                         list(plan.regions) if plan else [],
                         list(plan.motion.boxes) if plan and plan.motion else [],
                         self._tiles[1],
                         bool(plan and plan.full), self.last_detector_runs)

    def finish(self, frame_t: float, wall: float) -> list[FaceEvent]:
        return self.tracker.finish(frame_t, wall)
