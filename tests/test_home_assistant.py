"""FaceLens in a real Home Assistant (2024.1.6 in its own cached venv; today's, in a Debian 13
root, with scripts/ha-current.sh), MQTT set up through a config entry: the device, both
cameras' entities and the device triggers appear with nothing logged as invalid or
deprecated, and an automation built on one device trigger ("Obama is seen") fires when
`facelens run` sees him on a real-photo video.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import CACHE, FACELENS
from tests.home_assistant import HomeAssistant, home_assistant, write_config
from tests.mqtt_helpers import Broker, Subscriber
from tests.test_known_faces import people  # noqa: F401 - the photos and the visits video
from tests.test_mqtt import CAMERA, DEVICE, mqtt_env, retained

pytestmark = pytest.mark.timeout(2400)
UID = f"facelens_{DEVICE}_{CAMERA}"
HALL = f"facelens_{DEVICE}_hall"  # a second camera: its entities under the same device


@pytest.fixture(scope="session")
def hass():
    return home_assistant(CACHE)


def run(env: dict, config) -> None:
    out = subprocess.run([*FACELENS, "run", "--config", str(config)], capture_output=True,
                         text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr


def two_cameras(path, door, hall, loop: bool = False):
    """The door camera sees the visits; the hall camera, the astronaut alone."""
    path.write_text("".join(f'[[cameras]]\nname = "{name}"\nuri = "{uri}"\nloop = '
                            f'{str(loop).lower()}\n'
                            for name, uri in ((CAMERA, door), ("hall", hall))))
    return path


def test_entities_triggers_and_a_device_trigger_automation(hass, people, cli_env,  # noqa: F811
                                                            astronaut_clip, tmp_path):
    broker = Broker(tmp_path).start()
    try:
        env = {**mqtt_env(cli_env, broker, tmp_path),
               "FACELENS_IDENTITY_GALLERY_PATH": str(tmp_path / "faces.json"),
               "FACELENS_MQTT_STATS_INTERVAL_S": "1",
               "FACELENS_MQTT_SNAPSHOTS": "face"}  # the owner asked: the image entity too
        for name, files in (("astronaut", ["astronaut"]), ("obama", ["obama", "obama2"])):
            out = subprocess.run([*FACELENS, "faces", "add", name,
                                  *(str(people[f]) for f in files)], capture_output=True,
                                 text=True, env=env, timeout=120)
            assert out.returncode == 0, out.stderr
        folder = tmp_path / "ha"
        write_config(folder, broker.port)

        # 1: Home Assistant discovers FaceLens; its registries say what it made of it.
        ha = HomeAssistant(hass, folder)
        try:
            ha.wait_log("Connected to MQTT server")
            run(env, two_cameras(tmp_path / "cameras.toml", people["visits"],
                                 astronaut_clip.path))
            ha.wait_log(f"device_automation {UID}_face_seen_obama")
            ha.wait_log(f"binary_sensor {UID}_person_obama")
            ha.wait_log(f"binary_sensor {HALL}_person_obama")
            ha.wait_log(f"image {HALL}_snapshot")
            # Every device trigger FaceLens offers (retained on the broker), Home Assistant found.
            offered = [t.split("/")[2] for t, p in retained(broker.port, "homeassistant/#")
                       if t.split("/")[1] == "device_automation" and p]
            assert len(offered) == 2 * 10, offered  # 7 emotions, unknown, 2 people; per camera
            for object_id in offered:
                ha.wait_log(f"device_automation {object_id}", timeout=30)
        finally:
            ha.stop()
        devices = [d for d in ha.registry("core.device_registry")["devices"]
                   if ["mqtt", f"facelens_{DEVICE}"] in d["identifiers"]]
        assert len(devices) == 1, ha.registry("core.device_registry")
        device = devices[0]
        entities = {e["unique_id"]: e for e in ha.registry("core.entity_registry")["entities"]
                    if e["platform"] == "mqtt" and e["device_id"] == device["id"]}
        expected = {f"{uid}_{k}" for k in ("faces", "emotion", "people", "unknown_faces",
                                           "events", "last_person", "person_astronaut",
                                           "person_obama", "snapshot") for uid in (UID, HALL)}
        expected |= {f"facelens_{DEVICE}_fps", f"facelens_{DEVICE}_online"}  # the device's
        assert set(entities) == expected, sorted(entities)
        assert entities[f"{UID}_person_obama"]["entity_id"] == \
            f"binary_sensor.{UID}_person_obama"
        assert entities[f"{UID}_events"]["entity_id"] == f"event.{UID}_events"

        # 2: an automation on a device trigger, as the editor writes it; FaceLens fires it.
        automation = {
            "id": "facelens_obama_seen", "alias": "Obama is at the door",
            "trigger": [{"platform": "device", "domain": "mqtt", "device_id": device["id"],
                         "discovery_id": f"{UID}_face_seen_obama",
                         "type": f"face_seen_{CAMERA}", "subtype": "obama"}],
            "action": [{"service": "mqtt.publish",
                        "data": {"topic": "test/fired",
                                 "payload": "{{ trigger.payload_json.track_id }}"}}]}
        write_config(folder, broker.port, [automation])
        sub = Subscriber(broker.port, ["test/fired"])
        ha = HomeAssistant(hass, folder)
        try:
            ha.wait_log(f"Device trigger ('device_automation', '{UID}_face_seen_obama') has "
                        "been initialized")
            ha.wait_log("Initialized trigger")  # "… Obama is at the door" or "…: Ini…"
            # Home Assistant subscribes a moment after it says so: FaceLens plays the visits
            # in a loop until the automation has fired (each lap names him again).
            daemon = subprocess.Popen(
                [*FACELENS, "run", "--config", str(two_cameras(
                    tmp_path / "looping.toml", people["visits"], astronaut_clip.path, True))],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            try:
                assert sub.wait(lambda s: s.on("test/fired"), timeout=180), \
                    ha.log_text()[-4000:]
            finally:
                daemon.terminate()
                daemon.wait(timeout=30)
            fired = sub.on("test/fired")[0].decode()
            ha.wait_log("Obama is at the door: Running automation actions")
        finally:
            sub.close()
            ha.stop()
        assert fired.count("-") == 1  # a FaceLens track id
        # Each camera's event entity took only its own camera's events (one events topic).
        restored = {r["state"]["entity_id"]: r.get("extra_data") or {}
                    for r in ha.registry("core.restore_state")}
        for uid, cam in ((UID, CAMERA), (HALL, "hall")):
            assert restored[f"event.{uid}_events"]["last_event_attributes"]["camera"] == cam
        problems = ha.problems()
        assert problems == [], "\n".join(problems)
        print(f"Home Assistant {hass.version}: device {json.dumps(device.get('sw_version'))}, "
              f"{len(entities)} entities, the device-trigger automation fired for track {fired}")
    finally:
        broker.stop()
