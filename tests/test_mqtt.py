"""The MQTT contract against a real mosquitto: payloads, availability, discovery, TLS, auth."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from importlib import resources
from pathlib import Path

import jsonschema
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import FACELENS
from tests.mqtt_helpers import Broker, Subscriber, make_certs

PREFIX, DEVICE, CAMERA = "facelens", "testpi", "porch"
BASE = f"{PREFIX}/{DEVICE}"


def schema(name: str) -> dict:
    folder = resources.files("facelens.edge.publish").joinpath("schemas")
    text = folder.joinpath(f"{name}.schema.json").read_text()
    return json.loads(text)


def validate(payload: dict, name: str) -> None:
    jsonschema.validate(payload, schema(name), format_checker=jsonschema.FormatChecker())


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path).start()
    yield b
    b.stop()


def mqtt_env(cli_env: dict, broker: Broker, tmp_path: Path, **extra: str) -> dict:
    env = {**cli_env, "FACELENS_MQTT_HOST": "127.0.0.1", "FACELENS_MQTT_PORT": str(broker.port),
           "FACELENS_MQTT_OUTBOX_PATH": str(tmp_path / "outbox.sqlite3"),
           "FACELENS_MQTT_RECONNECT_MIN_S": "1", "FACELENS_MQTT_RECONNECT_MAX_S": "1",
           "FACELENS_SERVICE_DEVICE_ID": DEVICE, "FACELENS_SOURCE_NAME": CAMERA}
    env.update({f"FACELENS_{k.upper()}": v for k, v in extra.items()})
    return env


def run(env: dict, source: Path, timeout: float = 120,
        config: Path | None = None) -> subprocess.CompletedProcess:
    more = ["--config", str(config)] if config else []
    return subprocess.run([*FACELENS, "run", "--source", str(source), *more],
                          capture_output=True, text=True, env=env, timeout=timeout)


def test_every_payload_follows_its_schema(broker, astronaut_clip, cli_env, tmp_path):
    sub = Subscriber(broker.port, [f"{PREFIX}/#", "homeassistant/#"])
    out = run(mqtt_env(cli_env, broker, tmp_path, mqtt_stats_interval_s="0.3"),
              astronaut_clip.path)
    assert out.returncode == 0, out.stderr
    printed = [json.loads(x) for x in out.stdout.splitlines()]
    assert sub.wait(lambda s: len(s.on(f"{BASE}/events")) >= len(printed)
                    and s.on(f"{BASE}/available")[-1:] == [b"offline"])
    sub.close()
    events = sub.json(f"{BASE}/events")
    assert [e["event_id"] for e in events] == [e["event_id"] for e in printed]
    assert events[0]["type"] == "new" and events[-1]["type"] == "end"
    for e in events:
        validate(e, "event")
    states = sub.json(f"{BASE}/{CAMERA}/state")
    for s in states:
        validate(s, "state")
    # The camera's present: nobody, the astronaut (happy), nobody again.
    assert [(s["faces"], s["dominant_emotion"]) for s in states][:2] == [(0, None), (1, "happy")]
    assert states[-1]["faces"] == 0 and not any(s["fake_present"] for s in states)
    stats = sub.json(f"{BASE}/stats")
    assert stats, "no stats within the run"
    for s in stats:
        validate(s, "stats")
    assert stats[-1]["frames_processed"] > 0 and "detector" in stats[-1]["latency_ms"]
    # Every output's part of the health report is in the one report (the live page shows it).
    assert stats[-1]["mqtt_connected"] is True and stats[-1]["outbox_depth"] >= 0
    assert "ai-edge-litert" in stats[-1]["models"]["detector"]
    camera = stats[-1]["cameras"][CAMERA]
    assert camera["process_fps"] > 0 and camera["stalls"] == 0
    assert stats[-1]["outbox_moved_aside"] == ""
    assert sub.on(f"{BASE}/available")[0] == b"online"
    assert not sub.on(f"{BASE}/{CAMERA}/snapshot")  # images stay on the device by default


def test_a_damaged_outbox_does_not_stop_the_service(broker, astronaut_clip, cli_env, tmp_path):
    """What an SD card can leave after a power cut: moved aside, a new outbox, events flow."""
    (tmp_path / "outbox.sqlite3").write_bytes(b"\x13not a database\x00" * 500)
    sub = Subscriber(broker.port, [f"{BASE}/events", f"{BASE}/stats"])
    out = run(mqtt_env(cli_env, broker, tmp_path), astronaut_clip.path)
    assert out.returncode == 0, out.stderr
    printed = [json.loads(x) for x in out.stdout.splitlines()]
    assert printed and sub.wait(lambda s: len(s.on(f"{BASE}/events")) >= len(printed))
    assert sub.wait(lambda s: s.json(f"{BASE}/stats"))
    moved = sub.json(f"{BASE}/stats")[-1]["outbox_moved_aside"]
    sub.close()
    assert moved.startswith(str(tmp_path / "outbox.sqlite3.damaged-"))
    assert Path(moved).exists()
    assert sum("moved aside" in line for line in out.stderr.splitlines()) == 1


def test_snapshots_only_when_asked(broker, astronaut_clip, cli_env, tmp_path):
    sub = Subscriber(broker.port, [f"{BASE}/{CAMERA}/snapshot"])
    out = run(mqtt_env(cli_env, broker, tmp_path, mqtt_snapshots="face"), astronaut_clip.path)
    assert out.returncode == 0, out.stderr
    assert sub.wait(lambda s: s.on(f"{BASE}/{CAMERA}/snapshot"))
    jpeg = sub.on(f"{BASE}/{CAMERA}/snapshot")[0]
    sub.close()
    import cv2
    import numpy as np

    face = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert face is not None and 100 < face.shape[0] < 200  # the ~110 px face with its margin


def retained(port: int, topic: str, **connect) -> list[tuple[str, bytes]]:
    """What a subscriber arriving now is handed for `topic` (retained messages)."""
    sub = Subscriber(port, [topic], **connect)
    sub.wait(lambda s: False, timeout=0.5)
    sub.close()
    return [(t, p) for t, p, r in sub.messages if r]


def test_discovery_configs_are_retained_well_formed_and_removable(broker, astronaut_clip,
                                                                 cli_env, tmp_path):
    env = mqtt_env(cli_env, broker, tmp_path, service_max_frames="5")
    assert run(env, astronaut_clip.path).returncode == 0
    every = {t: json.loads(p) for t, p in retained(broker.port, "homeassistant/#")}
    triggers = {t: c for t, c in every.items() if t.split("/")[1] == "device_automation"}
    configs = {t: c for t, c in every.items() if t not in triggers}
    kinds = {(t.split("/")[1], c["unique_id"]) for t, c in configs.items()}
    uid = f"facelens_{DEVICE}_{CAMERA}"
    assert kinds == {("sensor", f"{uid}_faces"),
                     ("sensor", f"{uid}_emotion"),
                     # known faces (identity): on with the stock embedder, empty gallery
                     ("sensor", f"{uid}_people"),
                     ("sensor", f"{uid}_unknown_faces"),
                     ("sensor", f"{uid}_last_person"),
                     ("event", f"{uid}_events"),
                     ("sensor", f"facelens_{DEVICE}_fps"),
                     ("binary_sensor", f"facelens_{DEVICE}_online")}
    # No authenticity model: no fake-face alarm entity, no spoof trigger that could never fire.
    assert {(c["type"], c["subtype"]) for c in triggers.values()} == {
        *(("face_seen", e) for e in ("angry", "disgust", "fear", "happy", "sad", "surprise",
                                     "neutral")), ("face_seen", "unknown")}
    for c in triggers.values():
        assert c["automation_type"] == "trigger" and c["topic"].startswith(f"{BASE}/{CAMERA}/")
    for topic, c in configs.items():
        component = topic.split("/")[1]
        assert topic == f"homeassistant/{component}/{c['unique_id']}/config"
        assert c["device"]["identifiers"] == [f"facelens_{DEVICE}"]
        assert c["state_topic"].startswith(BASE)
        assert c.get("availability_topic", f"{BASE}/available") == f"{BASE}/available"
        assert c["default_entity_id"] == f"{component}.{c['unique_id']}" == \
            f"{component}.{c['object_id']}"
    emotion = configs[f"homeassistant/sensor/facelens_{DEVICE}_{CAMERA}_emotion/config"]
    assert emotion["device_class"] == "enum" and "happy" in emotion["options"]
    assert "value_json.dominant_emotion" in emotion["value_template"]

    assert run({**env, "FACELENS_MQTT_DISCOVERY": "false"}, astronaut_clip.path).returncode == 0
    assert retained(broker.port, "homeassistant/#") == []


def test_available_online_while_running_offline_after_sigterm_and_sigkill(
        broker, astronaut_clip, cli_env, tmp_path):
    env = mqtt_env(cli_env, broker, tmp_path, source_loop="true")
    topic = f"{BASE}/available"
    for sig in (signal.SIGTERM, signal.SIGKILL):
        proc = subprocess.Popen([*FACELENS, "run", "--source", str(astronaut_clip.path)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        try:
            proc.stdout.readline()  # the first event: the daemon is up and processing
            sub = Subscriber(broker.port, [topic])
            assert sub.wait(lambda s: s.on(topic)) and sub.on(topic)[-1] == b"online"
            proc.send_signal(sig)
            proc.wait(timeout=30)
            assert sub.wait(lambda s: s.on(topic)[-1] == b"offline", timeout=10), sig
            sub.close()
        finally:
            proc.kill()
        assert retained(broker.port, topic) == [(topic, b"offline")]
        assert proc.returncode == (0 if sig == signal.SIGTERM else -9)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.mark.parametrize("client_cert", [False, True])
def test_tls_and_password(tmp_path, certs, astronaut_clip, cli_env, client_cert):
    pwfile = tmp_path / "passwd"
    pwfile.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(pwfile), "cam", "s3cret-Pa55"], check=True)
    broker = Broker(tmp_path, tls={"ca": certs["ca.crt"], "cert": certs["server.crt"],
                                   "key": certs["server.key"],
                                   "require_certificate": client_cert},
                    password_file=pwfile).start()
    secret = tmp_path / "mqtt-password"
    secret.write_text("s3cret-Pa55\n")
    tls_client = {"ca_certs": str(certs["ca.crt"])}
    extra = {"mqtt_tls": "true", "mqtt_ca_file": str(certs["ca.crt"]), "mqtt_username": "cam",
             "mqtt_password_file": str(secret)}
    config = None
    if client_cert:
        # As the README and config.example.toml show it: the TLS files in the config file
        # (ca_file, cert_file and key_file are keys of their own, not secret indirection).
        extra = {}
        config = tmp_path / "config.toml"
        config.write_text(f'[mqtt]\ntls = true\nca_file = "{certs["ca.crt"]}"\n'
                          f'cert_file = "{certs["client.crt"]}"\n'
                          f'key_file = "{certs["client.key"]}"\nusername = "cam"\n'
                          f'password_file = "{secret}"\n')
        tls_client |= {"certfile": str(certs["client.crt"]), "keyfile": str(certs["client.key"])}
    try:
        sub = Subscriber(broker.port, [f"{BASE}/events"], username="cam",
                         password="s3cret-Pa55", tls=tls_client)
        out = run(mqtt_env(cli_env, broker, tmp_path, **extra), astronaut_clip.path,
                  config=config)
        assert out.returncode == 0, out.stderr
        n = len(out.stdout.splitlines())
        assert n >= 3 and sub.wait(lambda s: len(s.on(f"{BASE}/events")) == n)
        sub.close()
        assert "s3cret" not in out.stderr
    finally:
        broker.stop()


def test_wrong_password_is_reported_and_events_wait_in_the_outbox(tmp_path, astronaut_clip,
                                                                  cli_env):
    pwfile = tmp_path / "passwd"
    pwfile.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(pwfile), "cam", "right"], check=True)
    broker = Broker(tmp_path, password_file=pwfile).start()
    try:
        env = mqtt_env(cli_env, broker, tmp_path, mqtt_username="cam",
                       mqtt_password="wrong-one")
        out = run(env, astronaut_clip.path)
        assert out.returncode == 0
        assert "refused the connection" in out.stderr and "wrong-one" not in out.stderr
        n = len(out.stdout.splitlines())
        assert "stay in the outbox" in out.stderr
        import sqlite3

        db = sqlite3.connect(tmp_path / "outbox.sqlite3")
        waiting = db.execute("SELECT COUNT(*) FROM outbox WHERE topic = ?",
                             (f"{BASE}/events",)).fetchone()[0]
        db.close()
        assert waiting == n  # every event printed waits for the broker
    finally:
        broker.stop()


def test_check_reports_the_broker(broker, astronaut_clip, cli_env, tmp_path):
    env = mqtt_env(cli_env, broker, tmp_path)
    out = subprocess.run([*FACELENS, "check", "--source", str(astronaut_clip.path)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"mqtt: connected to 127.0.0.1:{broker.port}" in out.stdout
    broker.stop()
    out = subprocess.run([*FACELENS, "check", "--source", str(astronaut_clip.path)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 5
    assert f"cannot connect to MQTT broker 127.0.0.1:{broker.port}" in out.stderr


def test_mqtt_5_with_message_expiry_on_events(broker, astronaut_clip, cli_env, tmp_path):
    """mosquitto speaks MQTT 5 on any listener: events arrive with the expiry they were sent
    with (an event an hour late is no doorbell), and the run ends cleanly."""
    got: list[tuple[str, int | None]] = []
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    ready = threading.Event()

    def on_connect(client, _u, _f, rc, _p):
        client.subscribe(f"{BASE}/events", qos=1)
        ready.set()

    def on_message(_c, _u, msg):
        got.append((msg.topic, getattr(msg.properties, "MessageExpiryInterval", None)))

    sub.on_connect, sub.on_message = on_connect, on_message
    sub.connect("127.0.0.1", broker.port)
    sub.loop_start()
    assert ready.wait(10)
    try:
        out = run(mqtt_env(cli_env, broker, tmp_path, mqtt_protocol="5",
                           mqtt_event_expiry_s="600"), astronaut_clip.path)
        assert out.returncode == 0, out.stderr
        printed = out.stdout.splitlines()
        deadline = time.monotonic() + 30
        while len(got) < len(printed) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sub.loop_stop()
        sub.disconnect()
    assert len(got) == len(printed) >= 3
    assert all(e is not None and 0 < e <= 600 for _, e in got), got
