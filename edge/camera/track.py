"""Face tracks across frames, and the events of their lifecycle from the analysers' verdicts.

A subscriber wants to hear that someone arrived, when what we believe about them changes,
and that they left: not 15 messages a second. So a detection must persist for
`confirm_frames` frames before it becomes a track (`new`), a track reports only when the
label one of its heads reports changes (`update`, at most once per `update_interval_s`), and
it ends after `lost_after_s` unseen (`end`, with a summary).
Time comes from the frames, not the wall clock, so a video file gives the same events on any
machine. A frame's step is three: `associate` detections with tracks, let the analysers
(facelens.edge.analyse) look at the tracks seen, then `emit`; the tracker keeps each
analyser's state per track and asks it for its verdict, whatever it judges.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facelens.edge.analyse.base import Analyser, Verdict
from facelens.edge.camera.scan import TrackHint
from facelens.edge.config import TrackerConfig
from facelens.edge.detect.base import Box, Detection, centre, iou_matrix
from facelens.edge.events import CameraState, FaceEvent, TrackSummary, iso_time


@dataclass
class Track:
    track_id: str
    box: Box
    score: float
    first_t: float
    first_wall: float
    last_t: float
    last_wall: float
    detection: Detection
    hits: int = 1
    frames: int = 1
    confirmed: bool = False
    #: Each analyser's own state for this track, by name; it ends with the track.
    analysis: dict[str, Any] = field(default_factory=dict)
    #: The label each analyser said in the last event.
    published: dict[str, str | None] = field(default_factory=dict)
    seq: int = -1
    last_event_t: float = field(default=-1e18)
    #: Pixels per second its centre moved between its last two hits: where to look for a
    #: face that walks faster than its own size a frame.
    velocity: tuple[float, float] = (0.0, 0.0)

    def centre_at(self, t: float) -> tuple[float, float]:
        """Where its centre should be at `t`, moving on as it last moved."""
        dt = t - self.last_t
        cx, cy = centre(self.box)
        return (cx + self.velocity[0] * dt, cy + self.velocity[1] * dt)


class Tracker:
    def __init__(self, config: TrackerConfig, *, analysers: Sequence[Analyser], device: str,
                 camera: str) -> None:
        self.cfg = config
        self.analysers = {a.info.name: a for a in analysers}
        self.device, self.camera = device, camera
        self.tracks: list[Track] = []
        self._ids = itertools.count(1)
        self._run = uuid.uuid4().hex[:6]  # ids stay unique across restarts
        self._frame_size = (0, 0)
        self._hit: list[Track] = []

    # -- the per-frame step: associate, (the caller analyses), emit -------------------------
    def associate(self, detections: Sequence[Detection], t: float, wall: float,
                  frame_size: tuple[int, int]) -> list[tuple[Track, Detection]]:
        """Match this frame's faces to tracks (new faces start tentative tracks); returns
        each track seen in this frame with its detection, for the analysers."""
        self._frame_size = frame_size
        matches, unmatched = self._associate(detections, t)
        for track, det in matches:
            dt = t - track.last_t
            if dt > 0:
                (x0, y0), (x1, y1) = centre(track.box), centre(det.box)
                track.velocity = ((x1 - x0) / dt, (y1 - y0) / dt)
            track.box, track.score, track.detection = det.box, det.score, det
            track.hits += 1
            track.frames += 1
            track.last_t, track.last_wall = t, wall
        for det in unmatched:
            track = Track(f"{self._run}-{next(self._ids)}", det.box, det.score, t, wall, t,
                          wall, det)
            track.analysis = {name: a.start() for name, a in self.analysers.items()}
            self.tracks.append(track)
            matches.append((track, det))
        self._hit = [tr for tr, _ in matches]
        return matches

    def emit(self, t: float, wall: float) -> list[FaceEvent]:
        """The events this frame causes, from the tracks seen and the analysers' verdicts."""
        events: list[FaceEvent] = []
        for track in self._hit:
            events += self._after_hit(track, t, wall)
        hit = {id(tr) for tr in self._hit}
        survivors = []
        for track in self.tracks:
            if id(track) in hit or track.last_t == t:
                survivors.append(track)
            elif not track.confirmed:
                continue  # a tentative face that vanished: never announced, nothing to end
            elif t - track.last_t >= self.cfg.lost_after_s or self._walked_out(track, t):
                events.append(self._event("end", track, t, wall))
            else:
                track.hits = 0
                survivors.append(track)
        self.tracks = survivors
        self._hit = []
        return events

    def _walked_out(self, track: Track, t: float) -> bool:
        """Not found, and at the speed it last moved its face would be out of the frame by
        now: it left, so it ends without waiting `lost_after_s`. A face that turned away
        where it stood (not moving, or not heading out) waits as before."""
        w, h = self._frame_size
        if not w or not h:
            return False
        cx, cy = track.centre_at(t)
        return not (0 <= cx <= w and 0 <= cy <= h)

    def state(self, wall: float) -> CameraState:
        """The camera's present: confirmed faces, per analyser the most common label among
        them (ties broken by name, so the state does not flicker) and whether its alarm
        label is on any of them."""
        present = [tr for tr in self.tracks if tr.confirmed]
        said: dict[str, list[str]] = {}
        alarms: dict[str, bool] = {}
        for name, a in self.analysers.items():
            said[name] = [v.label for tr in present
                          if (v := self.verdict(tr, name)).label is not None]
            alarms[name] = a.info.positive is not None and a.info.positive in said[name]
        return CameraState.from_analysers(self.device, self.camera, len(present), said,
                                          alarms, iso_time(wall))

    def hints(self) -> list[TrackHint]:
        """Where the faces were in the last frame: where the next frame's scan looks."""
        return [TrackHint(tr.track_id, tr.box, tr.confirmed, tr.hits > 0) for tr in self.tracks]

    def finish(self, t: float, wall: float) -> list[FaceEvent]:
        """End every confirmed track (shutdown, end of a video)."""
        events = [self._event("end", tr, t, wall) for tr in self.tracks if tr.confirmed]
        self.tracks = []
        return events

    def verdict(self, track: Track, name: str) -> Verdict:
        return self.analysers[name].verdict(track.analysis[name])

    def labels(self, track: Track) -> dict[str, tuple[str, float]]:
        """Each analyser's current label for a track and its score."""
        out = {}
        for name in self.analysers:
            v = self.verdict(track, name)
            if v.label is not None:
                out[name] = (v.label, v.score)
        return out

    def alarm(self, track: Track) -> bool:
        """Whether some analyser's alarm label (fake, mask, …) is on this track."""
        return any(a.info.positive is not None and self.verdict(track, n).label == a.info.positive
                   for n, a in self.analysers.items())

    # -- association -----------------------------------------------------------------------
    def _associate(self, obs: Sequence[Detection], t: float
                   ) -> tuple[list[tuple[Track, Detection]], list[Detection]]:
        """Greedy matching, best IoU first; then, for small fast faces whose boxes no longer
        overlap enough, nearest to where the track was heading, within one face size."""
        if not self.tracks or not obs:
            return [], list(obs)
        tb = np.array([tr.box for tr in self.tracks], np.float64)
        ob = np.array([o.box for o in obs], np.float64)
        ious = iou_matrix(tb, ob)
        tc = np.array([tr.centre_at(t) for tr in self.tracks], np.float64)
        oc = (ob[:, :2] + ob[:, 2:]) / 2
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

    # -- events --------------------------------------------------------------------------
    def _after_hit(self, track: Track, t: float, wall: float) -> list[FaceEvent]:
        if not track.confirmed:
            if track.hits < self.cfg.confirm_frames:
                return []
            track.confirmed = True
            return [self._event("new", track, t, wall)]
        changed = any((label := self.verdict(track, name).label) is not None
                      and label != track.published.get(name) for name in self.analysers)
        if changed and t - track.last_event_t >= self.cfg.update_interval_s:
            return [self._event("update", track, t, wall)]
        return []

    def _event(self, kind: str, track: Track, t: float, wall: float) -> FaceEvent:
        track.seq += 1
        track.last_event_t = t
        verdicts: dict[str, Verdict] = {}
        summary_labels: dict[str, str] = {}
        for name, a in self.analysers.items():
            state = track.analysis[name]
            v = verdicts[name] = a.verdict(state)
            track.published[name] = v.label
            if (label := a.summary(state)) is not None:
                summary_labels[name] = label
        summary = None
        if kind == "end":
            summary = TrackSummary.from_heads(round(track.last_t - track.first_t, 3),
                                              track.frames, summary_labels,
                                              tuple(self.analysers))
        x1, y1, x2, y2 = (round(v) for v in track.box)
        return FaceEvent.from_verdicts(
            verdicts,
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
