"""A new per-track analyser is one class and one registry line: events, state, stats, their
schemas, the live view and Home Assistant discovery carry it with no other change.

The analyser here judges a face's size from its samples and decides after three of them (so
it stops sampling: the frame economy, per track); it runs beside the real stock heads on the
real astronaut video through the real daemon.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from facelens.edge.analyse.base import AnalyserInfo, FaceSample, Verdict
from facelens.edge.analyse.registry import ANALYSERS
from facelens.edge.events import CameraState, FaceEvent, ServiceStats
from facelens.edge.publish.base import Publisher
from facelens.edge.publish.discovery import discovery_messages
from facelens.edge.publish.topics import Topics
from facelens.edge.service.daemon import Daemon
from tests.test_mqtt import validate

pytestmark = pytest.mark.timeout(180)


@dataclass
class SizeState:
    sizes: list[float]


class FaceSize:
    """`near` for a face of 90 px or more, else `far`; decided after three samples."""

    info = AnalyserInfo("distance", ("far", "near"))
    last_latency_ms = 0.0

    def __init__(self) -> None:
        self.samples = 0

    def start(self) -> SizeState:
        return SizeState([])

    def wants(self, state: SizeState, sample: FaceSample) -> bool:
        return len(state.sizes) < 3

    def take(self, state: SizeState, sample: FaceSample) -> None:
        self.samples += 1
        state.sizes.append(sample.size)

    def verdict(self, state: SizeState) -> Verdict:
        if not state.sizes:
            return Verdict(None, 0.0)
        near = sum(s >= 90 for s in state.sizes) / len(state.sizes)
        label = "near" if near >= 0.5 else "far"
        return Verdict(label, round(max(near, 1 - near), 4), len(state.sizes) >= 3,
                       {"far": round(1 - near, 4), "near": round(near, 4)})

    def summary(self, state: SizeState) -> str | None:
        return self.verdict(state).label

    def describe(self) -> str:
        return "box size (no model)"


class Collect(Publisher):
    def __init__(self) -> None:
        self.events: list[FaceEvent] = []
        self.states: list[CameraState] = []
        self.stats: list[ServiceStats] = []

    def publish(self, event: FaceEvent) -> None:
        self.events.append(event)

    def publish_state(self, state: CameraState) -> None:
        self.states.append(state)

    def publish_stats(self, stats: ServiceStats) -> None:
        self.stats.append(stats)


def test_an_analyser_from_one_class_and_one_registry_line(monkeypatch, make_config,
                                                          astronaut_clip):
    analyser = FaceSize()
    monkeypatch.setitem(ANALYSERS, "distance", lambda cfg: [analyser])  # the registry line
    cfg = make_config(source={"uri": str(astronaut_clip.path)})
    out = Collect()
    daemon = Daemon(cfg, publishers=[out])
    assert daemon.run() == 0

    new, *_, end = out.events
    assert new.type == "new" and end.type == "end"
    assert new.heads["distance"].label == "near"  # the astronaut's face is ~110 px
    assert set(new.heads["distance"].probabilities) == {"far", "near"}
    assert new.emotion is not None and new.emotion.label == "happy"  # the heads still run
    assert end.summary is not None and end.summary.heads["distance"] == "near"
    for e in out.events:  # as published: JSON
        validate(json.loads(e.to_json()), "event")
    assert any(s.heads.get("distance") == "near" for s in out.states)
    for s in out.states:
        validate(json.loads(s.to_json()), "state")
    stats = out.stats[-1]
    assert stats.models["distance"] == "box size (no model)"
    assert "distance" in stats.latency_ms
    validate(json.loads(stats.to_json()), "stats")
    # Decided after three samples: it stopped sampling the track (one track here).
    assert analyser.samples == 3

    entities = dict(discovery_messages(Topics("facelens", "dev", "cam"), "homeassistant",
                                       heads=daemon.pipeline.models.infos))
    sensor = entities["homeassistant/sensor/facelens_dev_cam_head_distance/config"]
    assert sensor["options"] == ["far", "near", "none"]
    assert sensor["value_template"] == "{{ value_json.heads.distance or 'none' }}"
