"""The tracker's lifecycle: new after confirmation, rate-limited updates on change, end."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from facelens.edge.analyse.base import FaceSample
from facelens.edge.analyse.heads import HeadAnalyser, HeadRule, HeadState
from facelens.edge.camera.track import Tracker
from facelens.edge.config import TrackerConfig
from facelens.edge.contract import AUTHENTICITY_LABELS, FER2013_LABELS
from facelens.edge.detect.base import Detection

HAPPY = np.eye(7)[3] * 0.9 + 0.1 / 7
NEUTRAL = np.eye(7)[6] * 0.9 + 0.1 / 7
FRAME = np.zeros((480, 640, 3), np.uint8)


@dataclass(frozen=True)
class Scripted(Detection):
    """A detection carrying what each head's model would have said of it (the test's data)."""

    scores: dict = field(default_factory=dict, compare=False, hash=False)


class ScriptedHead(HeadAnalyser):
    """The real head analyser (cadence, smoothing, rule) with the model's answer scripted."""

    def wants(self, state: HeadState, sample: FaceSample) -> bool:
        return self.info.name in getattr(sample.detection, "scores", {})

    def probabilities(self, sample: FaceSample) -> np.ndarray:
        return sample.detection.scores[self.info.name]


def heads(alpha: float) -> list[ScriptedHead]:
    return [ScriptedHead(HeadRule("emotion", FER2013_LABELS), None, alpha=alpha, every=1),
            ScriptedHead(HeadRule("authenticity", AUTHENTICITY_LABELS, positive=1,
                                  threshold=0.5), None, alpha=alpha, every=1)]


class Driven:
    """A tracker driven as the pipeline drives it: associate, analyse, emit."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker, self.frame_no = tracker, 0

    def __getattr__(self, name: str):
        return getattr(self.tracker, name)

    def update(self, detections, t: float, wall: float, size=(640, 480)):
        self.frame_no += 1
        for track, det in self.tracker.associate(detections, t, wall, size):
            sample = FaceSample(FRAME, det, 0.2, track.frames, self.frame_no)
            for a in self.tracker.analysers.values():
                state = track.analysis[a.info.name]
                if a.wants(state, sample):
                    a.take(state, sample)
        return self.tracker.emit(t, wall)


def make_tracker(**cfg) -> Driven:
    base = {"confirm_frames": 3, "lost_after_s": 1.0, "update_interval_s": 1.0,
            "smoothing_alpha": 0.5, "iou": 0.3}
    config = TrackerConfig(**{**base, **cfg})
    return Driven(Tracker(config, analysers=heads(config.smoothing_alpha), device="dev",
                          camera="cam"))


def face(x: float, y: float = 100, size: float = 60, emotion=HAPPY, fake=None) -> Scripted:
    scores = {} if emotion is None else {"emotion": emotion}
    if fake is not None:
        scores["authenticity"] = np.array([1 - fake, fake])
    return Scripted((x, y, x + size, y + size), 0.9, scores=scores)


def run(tracker: Driven, frames: list[list[Scripted]], fps: float = 10.0):
    events = []
    for i, obs in enumerate(frames):
        events += tracker.update(obs, i / fps, 1_700_000_000 + i / fps, (640, 480))
    return events


def test_a_face_becomes_a_track_after_confirm_frames_and_ends_when_gone():
    tr = make_tracker()
    events = run(tr, [[face(100 + i)] for i in range(20)] + [[]] * 12)
    assert [e.type for e in events] == ["new", "end"]
    new, end = events
    assert new.track_id == end.track_id and (new.seq, end.seq) == (0, 1)
    assert new.frame_time.startswith("2023-11-14T22:13:20.200")  # third frame: 0.2 s
    assert new.emotion.label == "happy" and new.authenticity is None
    assert end.summary.frames == 20 and end.summary.duration_s == pytest.approx(1.9)
    assert end.summary.dominant_emotion == "happy"
    assert end.ended_at is not None and new.ended_at is None
    # Ends only once lost_after_s (1 s) has passed since the face was last seen (t = 1.9 s).
    assert end.frame_time.startswith("2023-11-14T22:13:22.900")
    assert len({e.event_id for e in events}) == 2


def test_a_blip_shorter_than_confirm_frames_is_never_announced():
    events = run(make_tracker(), [[face(100)], [face(101)], [], [], *[[]] * 20])
    assert events == []


def test_update_when_the_smoothed_emotion_changes_rate_limited():
    tr = make_tracker(update_interval_s=1.0)
    frames = [[face(100, emotion=HAPPY)]] * 5 + [[face(100, emotion=NEUTRAL)]] * 5
    frames += [[face(100, emotion=HAPPY)]] * 10
    events = run(tr, frames)
    kinds = [(e.type, e.emotion.label, e.frame_time[17:23]) for e in events]
    # new at 0.2 s; smoothed top label flips to neutral at 0.5 s but the previous event was
    # at 0.2 s, so the update waits for 1.2 s, by which time the face is happy again: the
    # flip-flop inside one interval is not reported.
    assert kinds == [("new", "happy", "20.200")]
    tr = make_tracker(update_interval_s=0.2)
    events = run(tr, frames)
    assert [(e.type, e.emotion.label) for e in events] == [
        ("new", "happy"), ("update", "neutral"), ("update", "happy")]
    assert [e.seq for e in events] == [0, 1, 2]


def test_authenticity_verdict_change_is_an_update():
    tr = make_tracker(update_interval_s=0.0)
    frames = [[face(100, fake=0.1)]] * 4 + [[face(100, fake=0.95)]] * 4
    events = run(tr, frames)
    assert [(e.type, e.authenticity.label) for e in events] == [("new", "real"),
                                                                 ("update", "fake")]
    assert events[1].authenticity.fake_probability > 0.5


def test_two_faces_get_separate_tracks_and_keep_them_while_moving():
    tr = make_tracker()
    frames = [[face(100 + 5 * i), face(400 - 5 * i, y=250)] for i in range(15)] + [[]] * 12
    events = run(tr, frames)
    news = [e for e in events if e.type == "new"]
    ends = [e for e in events if e.type == "end"]
    assert len(news) == 2 and len(ends) == 2
    assert {e.track_id for e in news} == {e.track_id for e in ends}
    by_id = {e.track_id: e for e in ends}
    left = next(e for e in news if e.box[0] < 200)
    assert by_id[left.track_id].box[0] == 170  # it followed the face moving right


def test_small_fast_face_is_followed_by_centre_distance_when_iou_fails():
    tr = make_tracker()
    # A 30 px face moving 20 px a frame: consecutive boxes overlap with IoU 0.2 only.
    events = run(tr, [[face(100 + 20 * i, size=30)] for i in range(10)] + [[]] * 12)
    assert [e.type for e in events] == ["new", "end"]


def test_a_face_that_speeds_up_beyond_its_size_a_frame_keeps_one_track():
    # A 60 px face comes in at 20 px a frame, then walks at 70 px a frame, missing one frame:
    # from one box to the next it jumps a face or more; where it was heading, it does not.
    xs = [10, 30, 50, 70, 130, 200, None, 340, 410]
    events = run(make_tracker(), [[] if x is None else [face(x)] for x in xs] + [[]] * 12)
    assert [e.type for e in events] == ["new", "end"]
    assert events[1].summary.frames == 8


def test_a_face_that_walked_out_of_the_frame_ends_at_once_one_that_turned_away_waits():
    # Walking right at 30 px a frame, last seen at 0.7 s at x 550-610: at that speed its
    # centre leaves the 640 px frame three frames later, and it ends then, not after
    # lost_after_s (1 s).
    walked = run(make_tracker(), [[face(340 + 30 * i)] for i in range(8)] + [[]] * 12)
    assert [e.type for e in walked] == ["new", "end"]
    assert walked[1].frame_time[17:23] == "21.000"
    # The same walk that stops mid-frame, and the face turns away: it may turn back, so it
    # waits the full second.
    turned = run(make_tracker(), [[face(100 + 30 * i)] for i in range(6)] + [[face(250)]] * 4
                 + [[]] * 12)
    assert [e.type for e in turned] == ["new", "end"]
    # last seen at 0.9 s; 1 s later (in float frame times, the frame after)
    assert turned[1].frame_time[17:23] == "22.000"
    # Near the edge but still: not walking out either.
    still = run(make_tracker(), [[face(575)]] * 6 + [[]] * 12)
    assert still[1].frame_time[17:23] == "21.500"


def test_a_missed_frame_does_not_split_a_confirmed_track():
    frames = [[face(100)]] * 5 + [[]] * 3 + [[face(100)]] * 5 + [[]] * 12
    events = run(make_tracker(), frames)
    assert [e.type for e in events] == ["new", "end"]
    assert events[1].summary.frames == 10


def test_finish_ends_every_confirmed_track():
    tr = make_tracker()
    run(tr, [[face(100), face(400)]] * 4 + [[face(100), face(400), face(250, y=300)]])
    events = tr.finish(10.0, 1_700_000_010.0)
    assert [e.type for e in events] == ["end", "end"]  # the tentative third face is not one
    assert tr.tracks == []


def test_without_an_emotion_model_emotion_is_null():
    tr = Driven(Tracker(TrackerConfig(confirm_frames=1), analysers=(), device="d", camera="c"))
    events = tr.update([face(10, emotion=None)], 0.0, 0.0, (640, 480))
    assert events[0].emotion is None and events[0].to_dict()["emotion"] is None
