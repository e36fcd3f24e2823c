"""Face tracks across frames, their smoothed head scores, and the events of their lifecycle.

A subscriber wants to hear that someone arrived, when what we believe about them changes,
and that they left: not 15 messages a second. So a detection must persist for
`confirm_frames` frames before it becomes a track (`new`), a track reports only when the
label one of its heads reports changes (`update`, at most once per `update_interval_s`), and
it ends after `lost_after_s` unseen (`end`, with a summary).
Time comes from the frames, not the wall clock, so a video file gives the same events on any
machine. Heads are data (facelens.edge.heads): the tracker smooths each head's
probabilities and asks the head's rule for the label, whatever the head is.
"""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from facelens.edge.config import TrackerConfig
from facelens.edge.detect.base import Box, Detection, iou_matrix
from facelens.edge.events import CameraState, FaceEvent, HeadResult, TrackSummary, iso_time
from facelens.edge.heads import HeadRule
from facelens.edge.scan import TrackHint


@dataclass(frozen=True)
class Observation:
    """One face in one frame, with the probabilities each head gave it (absent: not run)."""

    detection: Detection
    scores: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass
class HeadTrack:
    """One head's view of one track: smoothed probabilities, their running sum (for the
    summary), and the label last published."""

    smoothed: np.ndarray
    total: np.ndarray
    samples: int = 1
    published: int | None = None
    #: The track's frame count at the last sample: heads need not run every frame.
    sampled_at: int = 1


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
    heads: dict[str, HeadTrack] = field(default_factory=dict)
    seq: int = -1
    last_event_t: float = field(default=-1e18)


class Tracker:
    def __init__(self, config: TrackerConfig, *, heads: Sequence[HeadRule], device: str,
                 camera: str) -> None:
        self.cfg = config
        self.rules = {h.name: h for h in heads}
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
        """The camera's present: confirmed faces, per head the most common label among them
        (ties broken by name, so the state does not flicker), and whether any is fake."""
        present = [tr for tr in self.tracks if tr.confirmed]
        common: dict[str, str | None] = {}
        for name in self.rules:
            counts = Counter(label for tr in present
                             if (label := self._label(tr, name)) is not None)
            common[name] = min(counts, key=lambda k: (-counts[k], k)) if counts else None
        fake = any(self._label(tr, "authenticity") == "fake" for tr in present)
        emotion = common.pop("emotion", None)
        common.pop("authenticity", None)  # its state is `fake_present`
        return CameraState(self.device, self.camera, len(present), emotion, fake,
                           "authenticity" in self.rules, iso_time(wall), heads=common)

    def hints(self) -> list[TrackHint]:
        """Where the faces were in the last frame: where the next frame's scan looks."""
        return [TrackHint(tr.track_id, tr.box, tr.confirmed) for tr in self.tracks]

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
        for name, probs in obs.scores.items():
            p = np.asarray(probs, np.float64)
            ht = track.heads.get(name)
            if ht is None:
                track.heads[name] = HeadTrack(p, p.copy(), sampled_at=track.frames)
                continue
            # Smoothing per frame, not per sample: a head that ran k frames ago weighs the
            # new sample as k frames of it would have been (heads run at their own cadence).
            gap = max(1, track.frames - ht.sampled_at)
            w = 1 - (1 - a) ** gap
            ht.smoothed = (1 - w) * ht.smoothed + w * p
            ht.total = ht.total + p
            ht.samples += 1
            ht.sampled_at = track.frames

    def _after_hit(self, track: Track, t: float, wall: float) -> list[FaceEvent]:
        if not track.confirmed:
            if track.hits < self.cfg.confirm_frames:
                return []
            track.confirmed = True
            return [self._event("new", track, t, wall)]
        changed = any(self._decide(name, ht) != ht.published
                      for name, ht in track.heads.items())
        if changed and t - track.last_event_t >= self.cfg.update_interval_s:
            return [self._event("update", track, t, wall)]
        return []

    def _decide(self, name: str, ht: HeadTrack) -> int:
        return self.rules[name].decide(ht.smoothed)

    def _label(self, track: Track, name: str) -> str | None:
        ht = track.heads.get(name)
        return None if ht is None else self.rules[name].labels[self._decide(name, ht)]

    def labels(self, track: Track) -> dict[str, tuple[str, float]]:
        """Each head's current label for a track and its smoothed probability."""
        out = {}
        for name, ht in track.heads.items():
            k = self._decide(name, ht)
            out[name] = (self.rules[name].labels[k], float(ht.smoothed[k]))
        return out

    def _event(self, kind: str, track: Track, t: float, wall: float) -> FaceEvent:
        track.seq += 1
        track.last_event_t = t
        results: dict[str, HeadResult] = {}
        summary_labels: dict[str, str] = {}
        for name, ht in track.heads.items():
            rule = self.rules[name]
            k = ht.published = self._decide(name, ht)
            results[name] = HeadResult.from_probabilities(rule.labels, k, ht.smoothed)
            summary_labels[name] = rule.labels[rule.decide(ht.total / ht.samples)]
        summary = None
        if kind == "end":
            summary = TrackSummary.from_heads(round(track.last_t - track.first_t, 3),
                                              track.frames, summary_labels)
        x1, y1, x2, y2 = (round(v) for v in track.box)
        return FaceEvent.from_heads(
            results,
            type=kind,
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
            summary=summary,
        )
