"""Home Assistant device triggers: what an owner picks in the automation editor, no YAML.

Each trigger is a (type, subtype) with a topic of its own; a message there fires it, and its
JSON payload (track, camera, event, score, time) is what the automation gets as
`trigger.payload_json`. A track fires each trigger once per change: `face_seen` with the
emotion when it is new and whenever its emotion label changes, with the person's name once
the name is decided, with `unknown` once the track is judged nobody enrolled; `spoof` once an
authenticity verdict says fake. Trigger messages go through the durable outbox like events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from facelens.edge.events import FaceEvent
from facelens.edge.publish.topics import Topics

FACE_SEEN, SPOOF = "face_seen", "spoof"
UNKNOWN_SUBTYPE = "unknown"


@dataclass(frozen=True)
class Trigger:
    type: str
    subtype: str

    def topic(self, topics: Topics) -> str:
        return topics.trigger(self.type, self.subtype)


def offered(emotions: tuple[str, ...], people: tuple[str, ...], identity: bool,
            authenticity: bool) -> list[Trigger]:
    """Every trigger FaceLens can fire with these analysers and enrolled people."""
    out = [Trigger(FACE_SEEN, e) for e in emotions]
    if identity:
        out += [Trigger(FACE_SEEN, p) for p in people] + [Trigger(FACE_SEEN, UNKNOWN_SUBTYPE)]
    if authenticity:
        out.append(Trigger(SPOOF, "fake"))
    return out


class TriggerFeed:
    """Which triggers each event fires; remembers per track what it fired (until its end)."""

    def __init__(self) -> None:
        self._said: dict[str, dict[str, str]] = {}

    def fire(self, event: FaceEvent) -> list[tuple[Trigger, bytes]]:
        said = self._said.setdefault(event.track_id, {})
        now: dict[str, tuple[Trigger, float | None]] = {}
        if event.emotion is not None:
            now["emotion"] = (Trigger(FACE_SEEN, event.emotion.label), event.emotion.score)
        ident = event.identity
        if ident is not None and ident.status != "pending":
            sub = ident.name if ident.name else UNKNOWN_SUBTYPE
            now["identity"] = (Trigger(FACE_SEEN, sub), ident.score)
        if event.authenticity is not None and event.authenticity.label == "fake":
            now["spoof"] = (Trigger(SPOOF, "fake"), event.authenticity.fake_probability)
        out = []
        if event.type != "end":
            for key, (trigger, score) in now.items():
                if said.get(key) == trigger.subtype:
                    continue
                said[key] = trigger.subtype
                payload = {"track_id": event.track_id, "camera": event.camera,
                           "event_id": event.event_id, "event": event.type,
                           "subtype": trigger.subtype, "score": score,
                           "time": event.frame_time}
                out.append((trigger, json.dumps(payload, separators=(",", ":")).encode()))
        else:
            self._said.pop(event.track_id, None)
        return out
