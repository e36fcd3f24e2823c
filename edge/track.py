"""Face tracks across frames, their smoothed scores, and the events of their lifecycle.

A subscriber wants to hear that someone arrived, when what we believe about them changes,
and that they left: not 15 messages a second. So a detection must persist for
`confirm_frames` frames before it becomes a track (`new`), a track reports only when its
smoothed emotion's top label or its authenticity verdict changes (`update`, at most once per
`update_interval_s`), and it ends after `lost_after_s` unseen (`end`, with a summary).
Time comes from the frames, not the wall clock, so a video file gives the same events on any
machine.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from facelens.edge.config import TrackerConfig
from facelens.edge.detect.base import Box, Detection, iou_matrix
from facelens.edge.events import (
    AuthenticityResult,
    CameraState,
    EmotionResult,
    FaceEvent,
    TrackSummary,
    iso_time,
)


@dataclass(frozen=True)
class Observation:
    """One face in one frame, with what the classifiers said about it (None: stage off)."""

    detection: Detection
    emotion: np.ndarray | None = None
    fake_probability: float | None = None


@dataclass
class Track:
    track_id: str
    box: Box
    score: float
    first_t: float
    first_wall: float
    last_t: float
    last_wall: float
    hits: int = 1
    frames: int = 1
    confirmed: bool = False
    emotion: np.ndarray | None = None
    emotion_mass: np.ndarray | None = None
    fake: float | None = None
    seq: int = -1
    published_emotion: str | None = None
    published_verdict: str | None = None
    last_event_t: float = field(default=-1e18)


class Tracker:
    def __init__(self, config: TrackerConfig, *, emotion_labels: Sequence[str] | None,
                 fake_threshold: float, device: str, camera: str,
                 authenticity_enabled: bool = False) -> None:
        self.cfg = config
        self.authenticity_enabled = authenticity_enabled
        self.labels = tuple(emotion_labels) if emotion_labels else None
        self.fake_threshold = fake_threshold
        self.device, self.camera = device, camera
        self.tracks: list[Track] = []
        self._ids = itertools.count(1)
        self._run = uuid.uuid4().hex[:6]  # ids stay unique across restarts
        self._frame_size = (0, 0)

    # -- the per-frame step ----------------------------------------------------------------
    def update(self, observations: Sequence[Observation], t: float, wall: float,
               frame_size: tuple[int, int]) -> list[FaceEvent]:
        """Associate this frame's faces with tracks; return the events this frame causes."""
        self._frame_size = frame_size
        matches, unmatched = self._associate(observations)
        events: list[FaceEvent] = []
        for track, obs in matches:
            self._absorb(track, obs, t, wall)
            events += self._after_hit(track, t, wall)
        for obs in unmatched:
            d = obs.detection
            track = Track(f"{self._run}-{next(self._ids)}", d.box, d.score, t, wall, t, wall)
            self._absorb(track, obs, t, wall, first=True)
            self.tracks.append(track)
            events += self._after_hit(track, t, wall)
        matched = {id(tr) for tr, _ in matches}
        survivors = []
        for track in self.tracks:
            if id(track) in matched or track.last_t == t:
                survivors.append(track)
            elif not track.confirmed:
                continue  # a tentative face that vanished: never announced, nothing to end
            elif t - track.last_t >= self.cfg.lost_after_s:
                events.append(self._event("end", track, t, wall))
            else:
                track.hits = 0
                survivors.append(track)
        self.tracks = survivors
        return events

    def state(self, wall: float) -> CameraState:
        """The camera's present: confirmed faces, their most common emotion, any fake."""
        present = [tr for tr in self.tracks if tr.confirmed]
        tops = [top for tr in present if (top := self._top(tr)) is not None]
        dominant = max(sorted(set(tops)), key=tops.count) if tops else None
        return CameraState(self.device, self.camera, len(present), dominant,
                           any(self._verdict(tr) == "fake" for tr in present),
                           self.authenticity_enabled, iso_time(wall))

    def finish(self, t: float, wall: float) -> list[FaceEvent]:
        """End every confirmed track (shutdown, end of a video)."""
        events = [self._event("end", tr, t, wall) for tr in self.tracks if tr.confirmed]
        self.tracks = []
        return events

    # -- association -----------------------------------------------------------------------
    def _associate(self, obs: Sequence[Observation]
                   ) -> tuple[list[tuple[Track, Observation]], list[Observation]]:
        """Greedy matching, best IoU first; then, for small fast faces whose boxes no longer
        overlap enough, nearest centre within one face size."""
        if not self.tracks or not obs:
            return [], list(obs)
        tb = np.array([tr.box for tr in self.tracks], np.float64)
        ob = np.array([o.detection.box for o in obs], np.float64)
        ious = iou_matrix(tb, ob)
        tc, oc = (tb[:, :2] + tb[:, 2:]) / 2, (ob[:, :2] + ob[:, 2:]) / 2
        size = np.maximum(tb[:, 2] - tb[:, 0], tb[:, 3] - tb[:, 1])
        dist = np.linalg.norm(tc[:, None] - oc[None], axis=2) / np.maximum(size[:, None], 1)
        pairs: list[tuple[int, int]] = []
        used_t: set[int] = set()
        used_o: set[int] = set()
        candidates = sorted(((-ious[i, j], 0.0, i, j) for i in range(len(tb))
                             for j in range(len(ob)) if ious[i, j] >= self.cfg.iou),
                            key=lambda c: c[:2])
        candidates += sorted(((0.0, dist[i, j], i, j) for i in range(len(tb))
                              for j in range(len(ob)) if dist[i, j] < 1.0),
                             key=lambda c: c[1])
        for _, _, i, j in candidates:
            if i not in used_t and j not in used_o:
                pairs.append((i, j))
                used_t.add(i)
                used_o.add(j)
        matches = [(self.tracks[i], obs[j]) for i, j in pairs]
        return matches, [o for j, o in enumerate(obs) if j not in used_o]

    # -- state -----------------------------------------------------------------------------
    def _absorb(self, track: Track, obs: Observation, t: float, wall: float,
                first: bool = False) -> None:
        a = self.cfg.emotion_alpha
        track.box, track.score = obs.detection.box, obs.detection.score
        if not first:
            track.hits += 1
            track.frames += 1
        track.last_t, track.last_wall = t, wall
        if obs.emotion is not None:
            e = np.asarray(obs.emotion, np.float64)
            track.emotion = e if track.emotion is None else (1 - a) * track.emotion + a * e
            track.emotion_mass = (e if track.emotion_mass is None else track.emotion_mass + e)
        if obs.fake_probability is not None:
            p = obs.fake_probability
            track.fake = p if track.fake is None else (1 - a) * track.fake + a * p

    def _after_hit(self, track: Track, t: float, wall: float) -> list[FaceEvent]:
        if not track.confirmed:
            if track.hits < self.cfg.confirm_frames:
                return []
            track.confirmed = True
            return [self._event("new", track, t, wall)]
        changed = (self._top(track) != track.published_emotion
                   or self._verdict(track) != track.published_verdict)
        if changed and t - track.last_event_t >= self.cfg.update_interval_s:
            return [self._event("update", track, t, wall)]
        return []

    def _top(self, track: Track) -> str | None:
        if track.emotion is None or self.labels is None:
            return None
        return self.labels[int(np.argmax(track.emotion))]

    def _verdict(self, track: Track) -> str | None:
        if track.fake is None:
            return None
        return "fake" if track.fake >= self.fake_threshold else "real"

    def _event(self, kind: str, track: Track, t: float, wall: float) -> FaceEvent:
        track.seq += 1
        track.last_event_t = t
        track.published_emotion = self._top(track)
        track.published_verdict = self._verdict(track)
        emotion = auth = summary = None
        if track.emotion is not None and self.labels is not None:
            k = int(np.argmax(track.emotion))
            emotion = EmotionResult(self.labels[k], round(float(track.emotion[k]), 4),
                                    {lab: round(float(p), 4)
                                     for lab, p in zip(self.labels, track.emotion, strict=True)})
        if track.fake is not None:
            verdict = self._verdict(track)
            score = track.fake if verdict == "fake" else 1 - track.fake
            auth = AuthenticityResult(verdict or "real", round(float(score), 4),
                                      round(float(track.fake), 4))
        if kind == "end":
            dominant = None
            if track.emotion_mass is not None and self.labels is not None:
                dominant = self.labels[int(np.argmax(track.emotion_mass))]
            summary = TrackSummary(round(track.last_t - track.first_t, 3), track.frames,
                                   dominant, self._verdict(track))
        x1, y1, x2, y2 = (round(v) for v in track.box)
        return FaceEvent(
            type=kind,  # type: ignore[arg-type]
            event_id=uuid.uuid4().hex,
            track_id=track.track_id,
            seq=track.seq,
            device=self.device,
            camera=self.camera,
            frame_time=iso_time(wall),
            started_at=iso_time(track.first_wall),
            ended_at=iso_time(track.last_wall) if kind == "end" else None,
            box=(x1, y1, x2, y2),
            frame_size=self._frame_size,
            detection_score=round(track.score, 4),
            emotion=emotion,
            authenticity=auth,
            summary=summary,
        )
