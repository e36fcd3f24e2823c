"""Is the face live? Evidence from the track itself: blinks, and a 3D shape as it turns.

A photo or a phone held up to the camera is a plane. As it turns, every point on it moves
by one homography; a head's points do not, because the nose stands out of the plane of the
eyes and mouth. So each sample's 468 landmarks are compared with the track's first ones:
the part of their motion a homography cannot explain (its RMS, as a share of the eye
distance) is the *parallax*; the part a similarity (shift, turn in the image, scale) cannot
explain is how much the face's shape *changed* at all. Parallax above `parallax_live` is
evidence of a head; a shape that changed (the face turned) while a plane still explained it
is evidence of a plane. An eye that closes and opens again within `blink_max_s` is a blink:
evidence of a live face. Nothing of this decides while the face merely stands there or
walks about: then the honest answer is `undetermined`, and that is what it says.

A print or a phone also has a *frame* (frame_cue.py): straight sides around the face that
move with it. A sample with at least `frame_sides` of the four sides, both upright ones among
them, is *framed*; compared with the earlier framed sample whose face was farthest away, its
sides either moved with the face (rigid) or stayed as the face moved against it (static, the
room's edges).

The rule (README "Is it a live face?"): `live` after one blink or `live_samples` samples
with parallax; `spoof` after `spoof_samples` planar turns, or after `frame_samples` framed
samples whose sides moved with the face more often than not, with no parallax and no blink;
otherwise undetermined. A decided track reads no more landmarks.

Its cost can be bounded (`budget_ms`, off by default): a sample is then taken only when the
track's CPU on liveness, that sample included (estimated as the mean of recent samples),
stays within `budget_ms` per frame since the track was first offered. The thread's own CPU
time is counted, so a busy machine does not change the cadence; a slower one samples less
often and decides later. A print held nearly still, which nothing decides, is then sampled
as often as the budget allows, for as long as it lasts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from facelens.edge.analyse import surface_flow
from facelens.edge.analyse.base import AnalyserInfo, FaceSample, Verdict
from facelens.edge.analyse.frame_cue import Sides, compare, farthest, find_sides
from facelens.edge.config import Config, LivenessConfig
from facelens.edge.contract import LANDMARK_TASK
from facelens.edge.runtime.landmarker import FaceLandmarker
from facelens.edge.runtime.stock_models import open_configured

NAME = "liveness"
LIVE, SPOOF = "live", "spoof"
#: Face-mesh indices: the outer corners of the eyes (the eye distance), and per eye its
#: corners and two pairs of lid points (eye openness: lid gap over eye width).
OUTER_EYES = (33, 263)
EYES = ((33, 133, (159, 145), (158, 153)), (263, 362, (386, 374), (385, 380)))
#: Framed samples kept as references for the frame cue (a young track has at most 30).
FRAME_REFERENCES = 30
#: Weight of the newest sample in the running estimate of what a sample costs.
COST_WEIGHT = 0.2


def openness(p: np.ndarray) -> float:
    """Both eyes' mean lid gap over eye width (about 0.3 open, under 0.15 closed)."""
    out = []
    for a, b, (u1, l1), (u2, l2) in EYES:
        width = float(np.linalg.norm(p[a] - p[b])) or 1.0
        out.append((np.linalg.norm(p[u1] - p[l1]) + np.linalg.norm(p[u2] - p[l2])) / 2 / width)
    return float(np.mean(out))


def aligned_mean(points: list[np.ndarray]) -> np.ndarray:
    """The mean of a few samples' landmarks, each first moved onto the last by a similarity:
    landmark noise shrinks by the square root of their number, the face's shape stays."""
    base = points[-1].astype(np.float32)
    out = [base]
    for p in points[:-1]:
        sim, _ = cv2.estimateAffinePartial2D(p.astype(np.float32), base, method=cv2.LMEDS)
        if sim is not None:
            out.append(p.astype(np.float32) @ sim[:, :2].T + sim[:, 2])
    return np.mean(out, 0)


def unexplained(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """(parallax, change): the RMS of what a homography and what a similarity leave of the
    motion from `ref` to `cur`, each over the current eye distance."""
    b = cur.astype(np.float32)
    iod = float(np.linalg.norm(b[OUTER_EYES[0]] - b[OUTER_EYES[1]])) or 1.0
    return surface_flow.plane_residuals(ref, cur, iod)


@dataclass
class LivenessState:
    ref: np.ndarray | None = None
    recent: list[np.ndarray] = field(default_factory=list)
    samples: int = 0
    frame_no: int = -10**9
    first_frame: int | None = None  # the frame it was first offered
    spent_ms: float = 0.0  # CPU spent on this track's samples
    live_hits: int = 0
    planar_hits: int = 0
    parallax: float = 0.0  # the most seen
    change: float = 0.0
    blinks: int = 0
    open_levels: list[float] = field(default_factory=list)
    closed_at: float | None = None
    first_t: float | None = None
    decided_after_s: float | None = None
    decided: Verdict | None = None
    framed_samples: list[Sides] = field(default_factory=list)
    frame_sides: int = 0  # the most sides seen around the face in one sample
    framed: int = 0
    rigid: int = 0
    static: int = 0
    flow: surface_flow.SurfaceFlow | None = None
    flow_samples: int = 0
    flow_live: int = 0
    flow_planar: int = 0
    flow_parallax: float = 0.0  # the most seen
    flow_change: float = 0.0


class LivenessAnalyser:
    info = AnalyserInfo(NAME, (LIVE, SPOOF), SPOOF)

    def __init__(self, cfg: LivenessConfig, landmarker: FaceLandmarker,
                 cpu_clock: Callable[[], float] = time.thread_time) -> None:
        """`cpu_clock`: seconds of CPU this thread has used (the budget's measure)."""
        self.cfg, self.landmarker, self.cpu_clock = cfg, landmarker, cpu_clock
        self.last_latency_ms = 0.0
        self.sample_ms = 0.0  # what a sample costs, a running mean over all tracks

    def start(self) -> LivenessState:
        return LivenessState()

    def wants(self, state: LivenessState, sample: FaceSample) -> bool:
        c = self.cfg
        if state.decided is not None or sample.size < c.min_face_px:
            return False
        if state.first_frame is None:
            state.first_frame = sample.frame_no
        every = c.every_frames if state.samples < c.young_samples else c.old_every_frames
        if sample.frame_no - state.frame_no < every:
            return False
        return not self.over_budget(state, sample.frame_no)

    def over_budget(self, state: LivenessState, frame_no: int) -> bool:
        """Would one more sample now take the track past `budget_ms` a frame, counted from
        the frame it was first offered?"""
        if not self.cfg.budget_ms or state.first_frame is None:
            return False
        frames = frame_no - state.first_frame + 1
        return state.spent_ms + self.sample_ms > self.cfg.budget_ms * frames

    def take(self, state: LivenessState, sample: FaceSample) -> None:
        t0, cpu0 = time.perf_counter(), self.cpu_clock()
        state.frame_no = sample.frame_no
        if self.cfg.flow:
            self._flow(state, sample)
        pts3 = self.landmarker.in_frame(sample.image, sample.box)
        if pts3 is not None:
            if self.cfg.frame_sides:
                centre = pts3[:, :2].mean(0)
                self._frame(state, find_sides(sample.image, sample.box,
                                              (float(centre[0]), float(centre[1]))))
            self._learn(state, pts3[:, :2], sample.t)
        cost = (self.cpu_clock() - cpu0) * 1000
        state.spent_ms += cost
        self.sample_ms = cost if not self.sample_ms else (
            (1 - COST_WEIGHT) * self.sample_ms + COST_WEIGHT * cost)
        self.last_latency_ms = (time.perf_counter() - t0) * 1000

    def _frame(self, state: LivenessState, sides: Sides) -> None:
        state.frame_sides = max(state.frame_sides, len(sides.place))
        if not sides.framed(self.cfg.frame_sides):
            return
        state.framed += 1
        if state.framed_samples:
            rigid, static = compare(farthest(state.framed_samples, sides), sides,
                                    self.cfg.frame_move_min)
            state.rigid, state.static = state.rigid + rigid, state.static + static
        # The newest few only: an undecided track is sampled for as long as it lasts.
        state.framed_samples = [*state.framed_samples, sides][-FRAME_REFERENCES:]

    def _flow(self, state: LivenessState, sample: FaceSample) -> None:
        """Follow the face's texture on to this sample and weigh its plane (or not)."""
        c = self.cfg
        if state.flow is None or not surface_flow.follow(state.flow, sample.image,
                                                         sample.box):
            state.flow = surface_flow.start(sample.image, sample.box)  # (again)
            return
        parallax, change = surface_flow.residuals(state.flow)
        state.flow_samples += 1
        state.flow_parallax = max(state.flow_parallax, parallax)
        state.flow_change = max(state.flow_change, change)
        if parallax >= c.flow_live:
            state.flow_live += 1
        elif change >= c.flow_moved and parallax <= c.flow_planar_ratio * change:
            state.flow_planar += 1

    def _learn(self, state: LivenessState, pts: np.ndarray, t: float) -> None:
        c = self.cfg
        state.samples += 1
        if state.first_t is None:
            state.first_t = t
        state.recent = [*state.recent, pts][-c.smooth_samples:]
        if len(state.recent) < c.smooth_samples:
            pass
        elif state.ref is None:
            state.ref = aligned_mean(state.recent)
            state.recent = []
        else:
            parallax, change = unexplained(state.ref, aligned_mean(state.recent))
            state.parallax, state.change = max(state.parallax, parallax), max(state.change,
                                                                              change)
            if parallax >= c.parallax_live:
                state.live_hits += 1
            elif change >= c.moved_min and parallax <= c.planar_max:
                state.planar_hits += 1
        level = openness(pts)
        usual = float(np.median(state.open_levels)) if len(state.open_levels) >= 3 else None
        if usual is not None and level < c.blink_ratio * usual:
            if state.closed_at is None:
                state.closed_at = t
        else:
            if state.closed_at is not None and t - state.closed_at <= c.blink_max_s:
                state.blinks += 1
            state.closed_at = None
            state.open_levels = [*state.open_levels, level][-15:]
        state.decided = self._decide(state, t)

    def _decide(self, state: LivenessState, t: float) -> Verdict | None:
        c = self.cfg
        ev = self._evidence(state)
        # The mesh is a network's reading: shown a photo that turns, it can read a head that
        # turns. Where the face's own texture is followed, its parallax is the measurement
        # and the mesh's parallax is no evidence of life.
        mesh_live = 0 if state.flow_samples else state.live_hits
        live = state.blinks + mesh_live + state.flow_live
        if (state.blinks or mesh_live >= c.live_samples
                or state.flow_live >= c.flow_live_samples):
            score = 1.0 if state.blinks else live / (live + state.planar_hits
                                                     + state.flow_planar)
            verdict = Verdict(LIVE, round(score, 4), True, ev)
        elif (state.planar_hits >= c.spoof_samples or self._framed(state)
              or state.flow_planar >= c.flow_spoof_samples) and not live:
            verdict = Verdict(SPOOF, 1.0, True, ev)
        else:
            return None
        state.decided_after_s = round(t - (t if state.first_t is None else state.first_t), 3)
        return Verdict(verdict.label, verdict.score, True,
                       {**verdict.evidence, "decided_after_s": state.decided_after_s})

    def _framed(self, state: LivenessState) -> bool:
        """A frame around the face, seen often enough, that moved with it more than not."""
        return state.framed >= self.cfg.frame_samples and state.rigid > state.static

    @staticmethod
    def _evidence(state: LivenessState) -> dict[str, float]:
        return {"samples": float(state.samples), "blinks": float(state.blinks),
                "parallax": round(state.parallax, 4), "change": round(state.change, 4),
                "live_samples": float(state.live_hits),
                "planar_samples": float(state.planar_hits),
                "frame_sides": float(state.frame_sides), "framed_samples": float(state.framed),
                "frame_rigid": float(state.rigid), "frame_static": float(state.static),
                "flow_samples": float(state.flow_samples),
                "flow_parallax": round(state.flow_parallax, 4),
                "flow_change": round(state.flow_change, 4),
                "flow_live_samples": float(state.flow_live),
                "flow_planar_samples": float(state.flow_planar)}

    def verdict(self, state: LivenessState) -> Verdict:
        if state.decided is not None:
            return state.decided
        return Verdict(None, 0.0, False, self._evidence(state))

    def summary(self, state: LivenessState) -> str | None:
        return state.decided.label if state.decided else None

    def describe(self) -> str:
        return self.landmarker.describe()


def build(cfg: Config) -> list[LivenessAnalyser]:
    """On when `liveness.enabled` is true."""
    lc = cfg.liveness
    if not lc.enabled:
        return []
    model = open_configured("liveness.model", lc.model, cfg.runtime, task=LANDMARK_TASK)
    return [LivenessAnalyser(lc, FaceLandmarker(model))]
