"""Liveness through the real pipeline, on renders of a real photo (demo/liveness_scenes.py):
a head that turns and blinks is live, a print that stands still stays undetermined, and the
verdict reaches events, the end summary and the state by the README's rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from demo.liveness_scenes import face_3d, scene
from facelens.edge.camera.pipeline import Pipeline
from facelens.edge.config import ConfigError
from facelens.edge.detect import DETECTORS
from facelens.edge.events import authenticity_verdict
from facelens.edge.runtime.interpreter import open_model
from facelens.edge.runtime.landmarker import FaceLandmarker
from facelens.edge.sources.base import Frame
from tests.face_photos import photos, read
from tests.test_mqtt import validate

CACHE = Path(__file__).resolve().parent.parent / ".cache"
#: The rule's tests sample at the configured cadence whatever a sample costs on this machine
#: (no CPU budget, as by default): they check the verdict, not how soon a machine reaches it.
RULE = {"enabled": True, "budget_ms": 0}


@pytest.fixture(scope="module")
def obama(models_dir):
    from facelens.edge.config import load_config

    cfg = load_config(None, environ={}, overrides={
        "runtime": {"models_dir": str(models_dir), "edgetpu": "off"}})
    image = read(photos(CACHE)["obama.jpg"])
    box = max(DETECTORS["blazeface"](cfg).detect(image), key=lambda d: d.width).box
    landmarker = FaceLandmarker(open_model(models_dir / "face_landmark.json", edgetpu="off"))
    face = face_3d("obama", image, box, landmarker)
    assert face is not None
    return face


def play(make_config, face, kind: str, **kw):
    cfg = make_config(liveness=RULE, identity={"model": ""},
                      emotion={"model": ""}, tracker={"lost_after_s": 5.0})
    pipe = Pipeline(cfg)
    events, states = [], []
    for i, (t, image) in enumerate(scene(face, kind, **kw)):
        events += pipe.process(Frame(image, i, t, 1.7e9 + t))
        states.append(pipe.tracker.state(1.7e9 + t))
    return events + pipe.finish(4.0, 1.7e9 + 4.0), states


def test_a_head_that_turns_and_blinks_is_live(make_config, obama):
    events, states = play(make_config, obama, "live", amplitude=14, blink_at=1.2)
    new = next(e for e in events if e.type == "new")
    assert new.authenticity is not None and new.authenticity.verdict == "undetermined"
    changed = [e for e in events if e.type == "update" and e.authenticity
               and e.authenticity.verdict == "live"]
    assert changed, [e.authenticity for e in events]
    end = events[-1]
    assert end.type == "end" and end.authenticity.verdict == "live"
    assert end.summary.authenticity_verdict == "live"
    ev = end.authenticity.evidence
    assert ev["samples"] >= 3 and 0 < ev["decided_after_s"] <= 3.0
    assert ev["frame_sides"] < 3  # a head blended into the room has no frame around it
    assert end.authenticity.label is None  # no owner-trained model: no model label
    assert not any(s.fake_present for s in states) and states[-1].authenticity_enabled
    for e in (new, changed[0], end):
        validate(json.loads(e.to_json()), "event")


@pytest.mark.parametrize("kind", ["print", "phone"])
def test_a_print_or_a_phone_held_up_is_caught_by_its_frame(make_config, obama, kind):
    """Turned only ±8° (too little for the landmarks' parallax to say anything), the sheet's
    or the bezel's straight sides around the face, moving with it, make it a spoof."""
    events, states = play(make_config, obama, kind, amplitude=8, blink_at=None)
    end = events[-1]
    assert end.type == "end" and end.authenticity.verdict == "spoof", end.authenticity
    ev = end.authenticity.evidence
    assert ev["frame_sides"] >= 3 and ev["frame_rigid"] > ev["frame_static"], ev
    assert ev["parallax"] < 0.018 and ev["blinks"] == 0
    assert [e for e in events if e.type == "update" and e.authenticity.verdict == "spoof"]
    assert states[-1].fake_present
    validate(json.loads(end.to_json()), "event")


def test_without_the_frame_cue_a_small_turn_is_not_enough(make_config, obama):
    cfg = make_config(liveness={**RULE, "frame_sides": 0}, identity={"model": ""},
                      emotion={"model": ""}, tracker={"lost_after_s": 5.0})
    pipe = Pipeline(cfg)
    events = []
    for i, (t, image) in enumerate(scene(obama, "print", amplitude=8, blink_at=None)):
        events += pipe.process(Frame(image, i, t, 1.7e9 + t))
    end = (events + pipe.finish(4.0, 1.7e9 + 4.0))[-1]
    assert end.authenticity.evidence["framed_samples"] == 0  # off: no frame looked for
    assert end.authenticity.verdict != "live"


def test_a_print_that_stands_still_stays_undetermined(make_config, obama):
    events, _ = play(make_config, obama, "still")
    end = events[-1]
    assert end.type == "end" and end.authenticity.verdict == "undetermined"
    assert end.summary.authenticity_verdict == "undetermined"
    assert not [e for e in events if e.type == "update"]
    validate(json.loads(end.to_json()), "event")


@pytest.mark.parametrize(("model", "liveness", "on", "verdict"), [
    ("fake", None, False, "spoof"), ("real", None, False, "live"),
    (None, "live", True, "live"), (None, None, True, "undetermined"),
    ("fake", "live", True, "spoof"),  # the owner's model saying fake wins
    ("real", None, True, "undetermined"),  # with liveness on, "real" alone is not proof
    ("real", "spoof", True, "spoof"),
])
def test_the_rule_that_makes_a_verdict(model, liveness, on, verdict):
    assert authenticity_verdict(model, liveness, on) == verdict


def test_a_plane_threshold_above_the_live_one_is_refused(make_config):
    with pytest.raises(ConfigError, match="planar_max must be below liveness.parallax_live"):
        make_config(liveness={"planar_max": 0.05, "parallax_live": 0.02})


def test_home_assistant_gets_one_fake_face_entity_and_one_spoof_trigger():
    from facelens.edge.events import DOCUMENTED_INFOS
    from facelens.edge.publish.discovery import discovery_messages
    from facelens.edge.publish.topics import Topics

    heads = [i for i in DOCUMENTED_INFOS if i.name in ("authenticity", "liveness")]
    topics = [t for t, _ in discovery_messages(Topics("facelens", "dev", "cam"),
                                               "homeassistant", heads=heads)]
    assert len(topics) == len(set(topics))
    assert sum(t.endswith("binary_sensor/facelens_dev_cam_fake/config") for t in topics) == 1
    assert sum("device_automation" in t and "_spoof_" in t for t in topics) == 1


def surface_residuals(face, kind: str, models_dir) -> tuple[float, float]:
    """The most parallax and change the followed texture of a scene's face showed."""
    from facelens.edge.analyse import surface_flow
    from facelens.edge.config import load_config

    cfg = load_config(None, environ={}, overrides={
        "runtime": {"models_dir": str(models_dir), "edgetpu": "off"}})
    detector = DETECTORS["blazeface"](cfg)
    flow, most = None, (0.0, 0.0)
    for i, (_, image) in enumerate(scene(face, kind, amplitude=14, blink_at=None)):
        if i % 2:
            continue  # liveness samples every 2nd frame
        box = max(detector.detect(image, (1, 1)), key=lambda d: d.width).box
        if flow is None:
            flow = surface_flow.start(image, box)
            assert flow is not None and len(flow.ref) >= 20  # a face has texture to follow
            continue
        assert surface_flow.follow(flow, image, box), f"{kind}: lost the points at frame {i}"
        parallax, change = surface_flow.residuals(flow)
        most = (max(most[0], parallax), max(most[1], change))
    return most


def test_the_texture_of_a_turning_print_moves_as_a_plane_and_a_head_s_does_not(obama,
                                                                               models_dir):
    """Corners of the face followed frame to frame: turning ±14°, a bare print's (no
    border to give it away) fit one homography to within the tracker's noise although they
    moved well beyond a similarity; a head's leave the homography a residual twice the
    liveness threshold."""
    parallax, change = surface_residuals(obama, "bare", models_dir)
    assert parallax < 0.003 and change > 0.004, (parallax, change)
    parallax, change = surface_residuals(obama, "live", models_dir)
    assert parallax > 0.008, (parallax, change)


def test_a_bare_print_that_turns_is_caught_by_its_texture_and_a_head_is_live_by_it(
        make_config, obama):
    """No frame cue: a bare print turning ±14° is a spoof because the points of its face
    move as one plane; a head turning as much, without a blink, is live within a second
    because they do not."""
    cfg = make_config(liveness={**RULE, "frame_sides": 0}, identity={"model": ""},
                      emotion={"model": ""}, tracker={"lost_after_s": 5.0})
    for kind, verdict in (("bare", "spoof"), ("live", "live")):
        pipe = Pipeline(cfg)
        events = []
        for i, (t, image) in enumerate(scene(obama, kind, amplitude=14, blink_at=None)):
            events += pipe.process(Frame(image, i, t, 1.7e9 + t))
        end = (events + pipe.finish(4.0, 1.7e9 + 4.0))[-1]
        ev = end.authenticity.evidence
        assert end.authenticity.verdict == verdict, (kind, ev)
        if kind == "bare":
            assert ev["flow_planar_samples"] >= 3 and ev["flow_live_samples"] == 0, ev
        else:
            assert ev["flow_live_samples"] >= 2 and ev["blinks"] == 0, ev
            assert ev["decided_after_s"] <= 1.0, ev
        validate(json.loads(end.to_json()), "event")


class TickingClock:
    """A CPU clock on which every sample costs `cost_ms`, whatever this machine's speed."""

    def __init__(self, cost_ms: float) -> None:
        self.now, self.cost, self.calls = 0.0, cost_ms / 1000, 0

    def __call__(self) -> float:
        self.calls += 1
        if self.calls % 2 == 0:  # every second reading ends a sample
            self.now += self.cost
        return self.now


def sampled(make_config, face, budget_ms: float, cost_ms: float) -> list[int]:
    """The frames of a still print (never decided) at which liveness took a sample, each
    costing `cost_ms` of CPU, with a budget of `budget_ms` a frame."""
    from facelens.edge.analyse.liveness import LivenessAnalyser
    from facelens.edge.camera.pipeline import Models
    cfg = make_config(liveness={"enabled": True, "budget_ms": budget_ms},
                      identity={"model": ""}, emotion={"model": ""},
                      tracker={"lost_after_s": 5.0})
    models = Models(cfg)
    live = models.analysers[0]
    assert isinstance(live, LivenessAnalyser)
    models.analysers[0] = LivenessAnalyser(cfg.liveness, live.landmarker,
                                           TickingClock(cost_ms))
    pipe = Pipeline(cfg, models)
    taken: list[int] = []
    events = []
    for i, (t, image) in enumerate(scene(face, "still")):
        before = pipe.economy.head_runs
        events += pipe.process(Frame(image, i, t, 1.7e9 + t))
        if pipe.economy.head_runs > before:
            taken.append(i)
    end = (events + pipe.finish(4.0, 1.7e9 + 4.0))[-1]
    assert end.authenticity.verdict == "undetermined"
    assert end.authenticity.evidence["samples"] == len(taken)
    return taken


def test_a_track_being_assessed_stays_within_its_cpu_budget(make_config, obama):
    """Samples that cost 10 ms against a budget of 2 ms a frame: after the first (whose cost
    nobody knew yet), each is taken only when the track's CPU with it stays within 2 ms a
    frame since the track appeared, and it goes on being sampled; cheap samples (3 ms) keep
    the cadence, as does no budget (0) whatever a sample costs."""
    free = sampled(make_config, obama, 0.0, 10.0)
    assert sampled(make_config, obama, 2.0, 3.0) == free
    held = sampled(make_config, obama, 2.0, 10.0)
    assert held[0] == free[0] == 0  # the track's first frame
    assert 4 <= len(held) < len(free), (held, free)
    for k, f in enumerate(held[1:], 2):
        assert k * 10.0 <= 2.0 * (f + 1), (k, f, held)
