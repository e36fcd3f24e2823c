"""Home Assistant MQTT discovery: retained config messages that make entities appear.

Faces present, each analyser's most common label (an enum sensor with its labels as the
options, or a plain sensor when its labels are open) and its alarm (a problem binary sensor,
for analysers with a positive label), connectivity and frame rate show up as entities of one
device with no YAML. Which analyser shows where comes from the wire format's table
(events.state_fields).
Beside them: an event entity (new/update/end), a presence binary sensor per enrolled person,
the last person seen, the last face as an image entity (only when snapshots are on), and
device triggers (publish/triggers.py) an owner picks in the automation editor. Turning
discovery off publishes empty retained configs to the same topics, which is how Home
Assistant removes them; so does un-enrolling a person, for their entities.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from facelens.edge import __version__
from facelens.edge.analyse.base import AnalyserInfo
from facelens.edge.events import DOCUMENTED_INFOS, EVENT_ATTRIBUTES, state_fields
from facelens.edge.publish import triggers
from facelens.edge.publish.topics import Topics

#: The state of an enum sensor when nobody is there (or nobody said anything yet).
NOBODY = "none"


def _analyser_entities(topics: Topics, info: AnalyserInfo) -> list[tuple[str, str, dict]]:
    """Each state field an analyser has becomes an entity: its label as an enum sensor (a
    plain sensor when its labels are open), its alarm as a problem binary sensor, a list of
    names as their join, a count as a measurement."""
    out: list[tuple[str, str, dict]] = []
    for f in state_fields(info):
        base: dict[str, object] = {"name": f"{topics.camera} {f.name}",
                                   "state_topic": topics.state, "icon": f.icon}
        v = f"value_json.{f.path}"
        component = "sensor"
        if f.kind == "alarm":
            component = "binary_sensor"
            base |= {"value_template": f"{{{{ 'ON' if {v} else 'OFF' }}}}",
                     "device_class": "problem"}
        elif f.kind == "count":
            base |= {"value_template": f"{{{{ {v} }}}}", "state_class": "measurement"}
        elif f.kind == "list":  # names, which change at run time: no options to list
            base |= {"value_template": f"{{{{ {v} | join(', ') if {v} else '{NOBODY}' }}}}"}
        else:
            base |= {"value_template": f"{{{{ {v} or '{NOBODY}' }}}}"}
            if info.labels is not None:
                base |= {"device_class": "enum", "options": [*info.labels, NOBODY]}
        out.append((component, f.key, base))
    return out


def discovery_messages(topics: Topics, discovery_prefix: str, *,
                       heads: Sequence[AnalyserInfo] = (), people: Sequence[str] = (),
                       snapshots: bool = False, several: bool = False
                       ) -> list[tuple[str, dict]]:
    """(config topic, payload) for every entity and device trigger FaceLens offers with
    these analysers and enrolled people. `several`: this camera is one of several under the
    device, so its device triggers' types name it (Home Assistant refuses two triggers of
    one device with the same type and subtype)."""
    dev, cam = topics.device, topics.camera
    uid = f"facelens_{dev}_{cam}"
    device = {"identifiers": [f"facelens_{dev}"], "name": f"FaceLens {dev}",
              "manufacturer": "FaceLens", "model": "FaceLens edge", "sw_version": __version__}
    origin = {"name": "FaceLens", "sw_version": __version__}
    common = {"availability_topic": topics.available, "payload_available": "online",
              "payload_not_available": "offline", "device": device, "origin": origin}
    entities: list[tuple[str, str, dict]] = [
        ("sensor", "faces", {
            "name": f"{cam} faces", "state_topic": topics.state,
            "value_template": "{{ value_json.faces }}", "state_class": "measurement",
            "icon": "mdi:face-recognition"})]
    offered = {h.name for h in heads}
    # The emotion sensor is offered even without an emotion model (it then says `none`),
    # as it always was; other analysers only when they run.
    for info in [*(i for i in DOCUMENTED_INFOS[:1] if i.name not in offered), *heads]:
        entities += [e for e in _analyser_entities(topics, info)
                     if all(e[1] != had[1] for had in entities)]  # one fake-face entity
    entities.append(("event", "events", {
        "name": f"{cam} face event", "state_topic": topics.events,
        "event_types": ["new", "update", "end"], "value_template": event_template(cam),
        "icon": "mdi:face-recognition"}))
    if "identity" in offered:
        entities.append(("sensor", "last_person", {
            "name": f"{cam} last person", "state_topic": topics.last_person,
            "icon": "mdi:account-clock"}))
        for name in people:
            entities.append(("binary_sensor", f"person_{name}", {
                "name": f"{cam} {name}", "state_topic": topics.state,
                "value_template": f"{{{{ 'ON' if '{name}' in value_json.people else 'OFF' }}}}",
                "device_class": "presence", "icon": "mdi:account",
                "json_attributes_topic": topics.person(name)}))
    if snapshots:
        entities.append(("image", "snapshot", {
            "name": f"{cam} last face", "image_topic": topics.snapshot,
            "content_type": "image/jpeg"}))
    entities.append(("sensor", "fps", {
        "name": "frame rate", "state_topic": topics.stats,
        "value_template": "{{ value_json.fps }}", "unit_of_measurement": "fps",
        "state_class": "measurement", "entity_category": "diagnostic"}))
    out = []
    for component, key, payload in entities:
        unique = f"{uid}_{key}" if key != "fps" else f"facelens_{dev}_fps"
        out.append((f"{discovery_prefix}/{component}/{unique}/config",
                    {"unique_id": unique, **entity_ids(component, unique), "qos": 1,
                     **payload, **common}))
    # Connectivity: the availability topic itself, so "is it running" is an entity too.
    conn = f"facelens_{dev}_online"
    out.append((f"{discovery_prefix}/binary_sensor/{conn}/config", {
        "unique_id": conn, **entity_ids("binary_sensor", conn), "name": "online",
        "state_topic": topics.available, "payload_on": "online", "payload_off": "offline",
        "device_class": "connectivity", "entity_category": "diagnostic", "device": device,
        "origin": origin, "qos": 1}))
    # Device triggers: what an owner picks in the automation editor.
    for trig in triggers.offered(heads, people):
        object_id = f"{uid}_{trig.type}_{trig.subtype}"
        kind = f"{trig.type}_{cam}" if several else trig.type
        out.append((f"{discovery_prefix}/device_automation/{object_id}/config", {
            "automation_type": "trigger", "type": kind, "subtype": trig.subtype,
            "topic": trig.topic(topics), "qos": 1, "device": device, "origin": origin}))
    return out


def event_template(camera: str) -> str:
    """The event entity reads the device's events topic: its event type is the event's, its
    attributes the fields an automation wants most. Another camera's event renders empty,
    which Home Assistant ignores quietly (the topic carries every camera's events)."""
    fields = ", ".join(f"'{k}': {v}" for k, v in EVENT_ATTRIBUTES.items())
    return (f"{{% if value_json.camera == '{camera}' %}}"
            f"{{{{ {{'event_type': value_json.type, {fields}}} | to_json }}}}{{% endif %}}")


def entity_ids(component: str, unique: str) -> dict[str, str]:
    """Both spellings of the entity id Home Assistant should give: `object_id` (deprecated
    in 2025.10, gone in 2026.4) and `default_entity_id` (what it reads since; older
    versions drop the key they do not know)."""
    return {"object_id": unique, "default_entity_id": f"{component}.{unique}"}


def discovery_payloads(topics: Topics, discovery_prefix: str, enabled: bool, *,
                       were: Sequence[str] = (), **kwargs) -> list[tuple[str, bytes]]:
    """The retained messages to send: a config per offered entity and trigger, and an empty
    payload (removal) for every one not offered now — after discovery was disabled, or for
    people no longer enrolled (`were`: the people offered before)."""
    offered = dict(discovery_messages(topics, discovery_prefix, **kwargs)) if enabled else {}
    # Every entity the documented analysers may have made, and every one offered now.
    every = [t for t, _ in discovery_messages(topics, discovery_prefix, heads=DOCUMENTED_INFOS,
                                              people=were, snapshots=True)]
    every += [t for t in offered if t not in every]
    return [(t, json.dumps(offered[t], separators=(",", ":")).encode() if t in offered else b"")
            for t in every]
