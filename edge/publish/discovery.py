"""Home Assistant MQTT discovery: retained config messages that make entities appear.

Faces present, dominant emotion, the authenticity alarm, connectivity and frame rate show up
as entities of one device with no YAML. Turning discovery off publishes empty retained
configs to the same topics, which is how Home Assistant removes them.
"""

from __future__ import annotations

import json

from facelens.edge import __version__
from facelens.edge.contract import FER2013_LABELS
from facelens.edge.publish.topics import Topics

NO_EMOTION = "none"


def discovery_messages(topics: Topics, discovery_prefix: str, *, emotion_labels=FER2013_LABELS,
                       authenticity: bool = True) -> list[tuple[str, dict]]:
    """(config topic, payload) for every entity FaceLens offers."""
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
            "device_class": "enum", "options": [*emotion_labels, NO_EMOTION],
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
    if not authenticity:
        entities = [e for e in entities if e[1] != "fake"]
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
    every = discovery_messages(topics, discovery_prefix)  # what any configuration may have made
    return [(t, json.dumps(offered[t], separators=(",", ":")).encode() if t in offered else b"")
            for t, _ in every]
