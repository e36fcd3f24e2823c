"""Home Assistant MQTT discovery: retained config messages that make entities appear.

Faces present, dominant emotion, the authenticity alarm, connectivity and frame rate show up
as entities of one device with no YAML; every further head (a user's own age or mask model)
becomes a sensor of its most common label, with its manifest's labels as the options.
Turning discovery off publishes empty retained configs to the same topics, which is how Home
Assistant removes them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from facelens.edge import __version__
from facelens.edge.contract import AUTHENTICITY_LABELS, FER2013_LABELS
from facelens.edge.events import DOCUMENTED_HEADS
from facelens.edge.heads import HeadRule
from facelens.edge.publish.topics import Topics

NO_EMOTION = "none"
#: The two documented heads, for the removal messages when discovery is turned off.
DOCUMENTED = (HeadRule("emotion", FER2013_LABELS), HeadRule("authenticity", AUTHENTICITY_LABELS, 1))


def discovery_messages(topics: Topics, discovery_prefix: str, *,
                       heads: Sequence[HeadRule] = ()) -> list[tuple[str, dict]]:
    """(config topic, payload) for every entity FaceLens offers with these heads."""
    by_name = {h.name: h for h in heads}
    emotion = by_name.get("emotion")
    dev, cam = topics.device, topics.camera
    uid = f"facelens_{dev}_{cam}"
    device = {"identifiers": [f"facelens_{dev}"], "name": f"FaceLens {dev}",
              "manufacturer": "FaceLens", "model": "FaceLens edge", "sw_version": __version__}
    common = {"availability_topic": topics.available, "payload_available": "online",
              "payload_not_available": "offline", "device": device,
              "origin": {"name": "FaceLens", "sw_version": __version__}}
    entities: list[tuple[str, str, dict]] = [
        ("sensor", "faces", {
            "name": f"{cam} faces", "state_topic": topics.state,
            "value_template": "{{ value_json.faces }}", "state_class": "measurement",
            "icon": "mdi:face-recognition"}),
        ("sensor", "emotion", {
            "name": f"{cam} dominant emotion", "state_topic": topics.state,
            "value_template": f"{{{{ value_json.dominant_emotion or '{NO_EMOTION}' }}}}",
            "device_class": "enum",
            "options": [*(emotion.labels if emotion else ()), NO_EMOTION],
            "icon": "mdi:emoticon-outline"}),
        ("binary_sensor", "fake", {
            "name": f"{cam} fake face", "state_topic": topics.state,
            "value_template": "{{ 'ON' if value_json.fake_present else 'OFF' }}",
            "device_class": "problem", "icon": "mdi:incognito"}),
        ("sensor", "fps", {
            "name": "frame rate", "state_topic": topics.stats,
            "value_template": "{{ value_json.fps }}", "unit_of_measurement": "fps",
            "state_class": "measurement", "entity_category": "diagnostic"}),
    ]
    if "authenticity" not in by_name:
        entities = [e for e in entities if e[1] != "fake"]
    for h in heads:
        if h.name in DOCUMENTED_HEADS:
            continue
        entities.append(("sensor", f"head_{h.name}", {
            "name": f"{cam} {h.name.replace('_', ' ')}", "state_topic": topics.state,
            "value_template": f"{{{{ value_json.heads.{h.name} or '{NO_EMOTION}' }}}}",
            "device_class": "enum", "options": [*h.labels, NO_EMOTION],
            "icon": "mdi:face-recognition"}))
    out = []
    for component, key, payload in entities:
        unique = f"{uid}_{key}" if key != "fps" else f"facelens_{dev}_fps"
        out.append((f"{discovery_prefix}/{component}/{unique}/config",
                    {"unique_id": unique, "object_id": unique, **payload, **common}))
    # Connectivity: the availability topic itself, so "is it running" is an entity too.
    conn = f"facelens_{dev}_online"
    out.append((f"{discovery_prefix}/binary_sensor/{conn}/config", {
        "unique_id": conn, "object_id": conn, "name": "online",
        "state_topic": topics.available, "payload_on": "online", "payload_off": "offline",
        "device_class": "connectivity", "entity_category": "diagnostic", "device": device,
        "origin": common["origin"]}))
    return out


def discovery_payloads(topics: Topics, discovery_prefix: str, enabled: bool,
                       **kwargs) -> list[tuple[str, bytes]]:
    """The retained messages to send on connect: a config per offered entity, and an empty
    payload (removal) for every entity not offered now, e.g. after discovery was disabled."""
    offered = dict(discovery_messages(topics, discovery_prefix, **kwargs)) if enabled else {}
    # Every entity the documented heads may have made, and every one offered now.
    every = [t for t, _ in discovery_messages(topics, discovery_prefix, heads=DOCUMENTED)]
    every += [t for t in offered if t not in every]
    return [(t, json.dumps(offered[t], separators=(",", ":")).encode() if t in offered else b"")
            for t in every]
