"""One frame's path: motion → detector → tracker (associate) → analysers → tracker (emit).
Built from the config, owns no loop.

Kept apart from the daemon so that tests, benchmarks and the demo run exactly the code the
service runs, frame by frame, without threads or signals. Which detector runs comes from the
detectors registry; which analysers run comes from the analysers registry and the config —
nothing here knows what an analyser means. `Models` holds what cameras share; `Pipeline` is
one camera.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from facelens.edge.analyse.base import Analyser, AnalyserInfo, FaceSample
from facelens.edge.analyse.registry import build_analysers
from facelens.edge.camera.follow import Follower
from facelens.edge.camera.scan import Scanner, ScanPlan
from facelens.edge.camera.track import Track, Tracker
from facelens.edge.config import Config
from facelens.edge.detect import DETECTORS
from facelens.edge.detect.base import Box, Detection, Detector, iou
from facelens.edge.events import FaceEvent, FaceView, FrameView
from facelens.edge.sources.base import Frame

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


class _LazyGrey:
    """The frame in grey, converted once and only if something asks (following faces)."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        self._grey: np.ndarray | None = None

    def get(self) -> np.ndarray:
        if self._grey is None:
            self._grey = cv2.cvtColor(self.image, cv2.COLOR_BGR2GRAY)
        return self._grey


class Models:
    """What every camera shares: the detector and the analysers (each holds its model).
    Loaded once per process: a Pi holds one copy of each model however many cameras run."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        # OpenCV's own thread pool splits even a 160-px resize across cores and then spins
        # waiting for work: in an empty room that was half the CPU beyond decoding
        # (benchmarks/README.md). Per process, as the models are.
        cv2.setNumThreads(cfg.runtime.threads)
        self.detector: Detector = DETECTORS[cfg.detector.kind](cfg)
        self.analysers: list[Analyser] = build_analysers(cfg)
        for name, hc in cfg.head_configs().items():
            if hc.model is None:
                log.info("no %s model configured: events carry %s = null", name, name)

    @property
    def infos(self) -> tuple[AnalyserInfo, ...]:
        """What publishers need to know of the analysers (labels, alarms)."""
        return tuple(a.info for a in self.analysers)

    def open_labels(self) -> dict[str, tuple[str, ...]]:
        """What analysers with open labels can say now (identity: the enrolled people)."""
        return {a.info.name: a.labels_now() for a in self.analysers
                if a.info.labels is None and hasattr(a, "labels_now")}

    def analyser(self, name: str) -> Analyser | None:
        return next((a for a in self.analysers if a.info.name == name), None)

    def describe(self) -> dict[str, str]:
        """Which model runs where, per stage, for `facelens check`, logs and stats."""
        out = {"detector": f"{self.detector.name} on {self.detector.backend}"}
        for name in self.cfg.head_configs():
            a = self.analyser(name)
            out[name] = a.describe() if a else "off (no model configured)"
        for a in self.analysers:
            out.setdefault(a.info.name, a.describe())
        return out


class Pipeline:
    """One camera's path through the shared models: its scanner (motion, regions), its
    tracker, its counters and what its live view shows. Several cameras are several of these
    over one `Models`."""

    def __init__(self, cfg: Config, models: Models | None = None, *,
                 camera: str | None = None) -> None:
        self.cfg = cfg
        self.models = models or Models(cfg)
        self.detector = self.models.detector
        self.analysers = self.models.analysers
        self.camera = camera or cfg.source.name
        self.tracker = Tracker(cfg.tracker, analysers=self.analysers,
                               device=cfg.service.device_id, camera=self.camera)
        self.scanner = Scanner(cfg.scan, cfg.motion)
        self.follower = Follower(cfg.scan.follow_min_score) if cfg.scan.follow_min_score else None
        self.times = StageTimes()
        self.economy = Economy()
        self.last_faces: list[Detection] = []
        self.frame_no = 0
        self.last_plan: ScanPlan | None = None
        self.last_detector_runs = 0
        self._tiles: tuple[tuple[int, int], list[Box]] = ((0, 0), [])  # for views

    def describe(self) -> dict[str, str]:
        return self.models.describe()

    def process(self, frame: Frame) -> list[FaceEvent]:
        t0 = time.perf_counter()
        self.frame_no += 1
        grey = _LazyGrey(frame.image)
        follower = self.follower
        follow = (None if follower is None
                  else lambda hint: follower.find(grey.get(), hint.track_id))
        plan = self.last_plan = self.scanner.plan(frame.image, frame.t, self.tracker.hints(),
                                                  follow)
        t_motion = time.perf_counter()
        if plan.full:
            faces = self.detector.detect(frame.image, self.cfg.detector.tiles, plan.where)
        elif plan.regions:
            faces = self.detector.detect_regions(frame.image, plan.regions)
        else:
            faces = []
        detected = {id(f) for f in faces}
        faces = faces + [d for _, d in plan.followed
                         if all(iou(d.box, f.box) < 0.3 for f in faces)]
        eco = self.economy
        eco.frames += 1
        eco.full_scans += plan.full
        eco.motion_frames += bool(plan.motion and plan.motion.boxes)
        self.last_detector_runs = self.detector.last_runs if (plan.full or plan.regions) else 0
        eco.detector_runs += self.last_detector_runs
        times = {"motion": (t_motion - t0) * 1000,
                 "detector": (time.perf_counter() - t_motion) * 1000}
        times.update({name: 0.0 for name in self.cfg.head_configs()})
        times.update({a.info.name: 0.0 for a in self.analysers})
        h, w = frame.image.shape[:2]
        seen = self.tracker.associate(faces, frame.t, frame.wall, (w, h))
        if self.follower is not None:
            for track, det in seen:
                if id(det) in detected:
                    self.follower.remember(grey.get(), track.track_id, det)
                else:
                    self.follower.moved(track.track_id, det)
            self.follower.forget({tr.track_id for tr in self.tracker.tracks})
        self._analyse(seen, frame, times)
        events = self.tracker.emit(frame.t, frame.wall)
        self.last_faces = faces
        times["frame"] = (time.perf_counter() - t0) * 1000
        self.times.add(times)
        return events

    def _analyse(self, seen: list[tuple[Track, Detection]], frame: Frame,
                 times: dict[str, float]) -> None:
        """Each analyser looks at each track seen in this frame, when it wants a sample;
        with a budget (`scan.samples_per_frame`), undecided tracks are served first and the
        longest unserved before the others."""
        budget = self.cfg.scan.samples_per_frame or None
        margin = self.cfg.detector.crop_margin
        wanted: list[tuple[Analyser, Any, FaceSample, Track]] = []
        for track, det in seen:
            sample = FaceSample(frame.image, det, margin, track.frames, self.frame_no,
                                frame.t)
            for a in self.analysers:
                state = track.analysis[a.info.name]
                if a.wants(state, sample):
                    wanted.append((a, state, sample, track))
        if budget is not None and len(wanted) > budget:
            # Only here is a verdict needed: undecided first, then the longest tracks.
            wanted.sort(key=lambda w: (w[0].verdict(w[1]).decided, -w[3].frames))
            wanted = wanted[:budget]
        for a, state, sample, _ in wanted:
            a.take(state, sample)
            times[a.info.name] += a.last_latency_ms
            self.economy.head_runs += 1

    def view(self, frame: Frame) -> FrameView:
        """What this frame looked like to the pipeline, for outputs that show pictures."""
        plan = self.last_plan
        h, w = frame.image.shape[:2]
        if self._tiles[0] != (w, h):
            self._tiles = ((w, h), self.detector.scan_tiles(w, h, self.cfg.detector.tiles))
        faces = [FaceView(tr.track_id, tr.box, tr.confirmed, self.tracker.labels(tr),
                          self.tracker.alarm(tr))
                 for tr in self.tracker.tracks]
        return FrameView(frame.image, frame.wall, faces,
                         list(plan.regions) if plan else [],
                         list(plan.motion.boxes) if plan and plan.motion else [],
                         self._tiles[1],
                         bool(plan and plan.full), self.last_detector_runs, self.camera)

    def finish(self, frame_t: float, wall: float) -> list[FaceEvent]:
        return self.tracker.finish(frame_t, wall)
