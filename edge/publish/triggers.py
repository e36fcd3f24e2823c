"""Home Assistant device triggers: what an owner picks in the automation editor, no YAML.

Each trigger is a (type, subtype) with a topic of its own; a message there fires it, and its
JSON payload (track, camera, event, score, time) is what the automation gets as
`trigger.payload_json`. Which analyser fires which trigger is the wire format's table
(`events.trigger_kinds`, `FaceEvent.triggered`); here a track fires each of its analysers'
triggers once per change of subtype (a new emotion, the name once decided), until its end.
Trigger messages go through the durable outbox like events.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from facelens.edge.analyse.base import AnalyserInfo
from facelens.edge.events import FaceEvent, trigger_kinds
from facelens.edge.publish.topics import Topics


@dataclass(frozen=True)
class Trigger:
    type: str
    subtype: str

    def topic(self, topics: Topics) -> str:
        return topics.trigger(self.type, self.subtype)


def offered(analysers: Sequence[AnalyserInfo], people: Sequence[str]) -> list[Trigger]:
    """Every trigger FaceLens can fire with these analysers and enrolled people."""
    kinds = (Trigger(t, s) for info in analysers for t, s in trigger_kinds(info, people))
    return list(dict.fromkeys(kinds))  # liveness and an owner model share `spoof`


class TriggerFeed:
    """Which triggers each event fires; remembers per track what it fired (until its end)."""

    def __init__(self) -> None:
        self._said: dict[str, dict[str, str]] = {}

    def fire(self, event: FaceEvent) -> list[tuple[Trigger, bytes]]:
        if event.type == "end":
            self._said.pop(event.track_id, None)
            return []
        said = self._said.setdefault(event.track_id, {})
        out = []
        for analyser, (kind, subtype, score) in event.triggered().items():
            if said.get(analyser) == subtype:
                continue
            said[analyser] = subtype
            payload = {"track_id": event.track_id, "camera": event.camera,
                       "event_id": event.event_id, "event": event.type, "subtype": subtype,
                       "score": score, "time": event.frame_time}
            out.append((Trigger(kind, subtype),
                        json.dumps(payload, separators=(",", ":")).encode()))
        return out
