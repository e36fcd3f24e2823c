"""Known faces, through the real CLI, detector, embedding model and video: enrol two people,
run, and every track of theirs is named while a stranger never is; photos that cannot be
enrolled are refused one line each and change nothing; a gallery changed while the service
runs is picked up without a restart.

The people: the astronaut (scikit-image's photo) and Barack Obama, enrolled from two photos
(obama.jpg, obama2.jpg); the video shows a third, different photo of him (obama3.jpg), and Joe
Biden as the stranger (face_recognition's test images, tests/face_photos.py).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import CACHE, FACELENS
from tests.face_photos import photos, read
from tests.test_mqtt import validate

pytestmark = pytest.mark.timeout(300)


def facelens(*args: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*FACELENS, *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


@pytest.fixture(scope="module")
def people(tmp_path_factory, models_dir) -> dict[str, Path]:
    """Photo files by role, and the visits video (astronaut, obama3, biden)."""
    from demo.scenes import astronaut, background, paste_face, photo_of, visits_video
    from facelens.edge.config import load_config
    from facelens.edge.detect import DETECTORS

    folder = tmp_path_factory.mktemp("people")
    real = photos(CACHE)
    cfg = load_config(None, environ={}, overrides={"runtime": {"models_dir": str(models_dir),
                                                               "edgetpu": "off"}})
    detector = DETECTORS["blazeface"](cfg)

    def photo(name: str):
        image = read(real[name])
        face = max(detector.detect(image), key=lambda f: f.width)
        return photo_of(image, name, tuple(int(v) for v in face.box))

    astro = astronaut()
    cv2.imwrite(str(folder / "astronaut.png"), astro.image)
    two = background()
    paste_face(two, astro, 80, 120, 120)
    paste_face(two, astro, 380, 120, 120)
    cv2.imwrite(str(folder / "two.png"), two)
    cv2.imwrite(str(folder / "nobody.png"), background())
    cv2.imwrite(str(folder / "tiny.png"), cv2.resize(astro.image, (120, 120)))
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    visits = visits_video(folder / "visits.avi", [astro, photo("obama3.jpg"), photo("biden.jpg")])
    alone = visits_video(folder / "obama3.avi", [photo("obama3.jpg")], frames_each=30, gap=30)
    return {"astronaut": folder / "astronaut.png", "obama": real["obama.jpg"],
            "obama2": real["obama2.jpg"], "two": folder / "two.png",
            "nobody": folder / "nobody.png", "tiny": folder / "tiny.png",
            "corrupt": folder / "corrupt.jpg", "visits": visits, "obama3_video": alone}


@pytest.fixture
def env(cli_env, tmp_path) -> dict[str, str]:
    return {**cli_env, "FACELENS_IDENTITY_GALLERY_PATH": str(tmp_path / "faces.json"),
            "FACELENS_RUNTIME_EDGETPU": "off"}


def test_refused_photos_say_why_and_change_nothing(people, env, tmp_path):
    gallery = tmp_path / "faces.json"
    out = facelens("faces", "add", "astronaut", str(people["two"]), str(people["nobody"]),
                   str(people["tiny"]), str(people["corrupt"]), str(tmp_path / "missing.jpg"),
                   env=env)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = [x for x in out.stderr.splitlines() if x.startswith("refused ")]
    why = {Path(x.split(": ", 1)[0].removeprefix("refused ")).name: x.split(": ", 1)[1]
           for x in lines}
    assert why["two.png"] == "2 faces: a photo must show one person"
    assert why["nobody.png"] == "no face found"
    assert why["tiny.png"].startswith("the face is ") and "identity.min_face_px" in why["tiny.png"]
    assert why["corrupt.jpg"] == "not a file OpenCV can read as an image"
    assert why["missing.jpg"] == "no such file"
    assert "no photo of astronaut was usable (5 refused): nothing changed" in out.stderr
    assert not gallery.exists()
    for bad in ("bad name", "unknown", "x" * 33, "9lives", "Zoë", "a/b"):
        out = facelens("faces", "add", bad, str(people["astronaut"]), env=env)
        assert out.returncode == 2 and "gallery error: name" in out.stderr, (bad, out.stderr)
    assert not gallery.exists()


def test_enrol_list_remove_and_what_is_stored(people, env, tmp_path):
    gallery = tmp_path / "faces.json"
    out = facelens("faces", "add", "obama", str(people["obama"]), str(people["obama2"]),
                   env=env)
    assert out.returncode == 0, out.stderr
    assert "enrolled obama: 2 photo(s) (0 refused)" in out.stdout
    assert gallery.stat().st_mode & 0o777 == 0o600
    stored = json.loads(gallery.read_text())
    assert set(stored) == {"version", "model_sha256", "people"}
    vectors = np.asarray(stored["people"]["obama"])
    assert vectors.shape == (2, 192)  # embeddings only, never the photos
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    listed = facelens("faces", "list", env=env)
    assert "obama\t2 photo(s)" in listed.stdout and "1 person enrolled" in listed.stdout
    gone = facelens("faces", "remove", "obama", env=env)
    assert gone.returncode == 0 and "their embeddings are deleted" in gone.stdout
    assert json.loads(gallery.read_text())["people"] == {}
    again = facelens("faces", "remove", "obama", env=env)
    assert again.returncode == 2 and "nobody named 'obama' is enrolled" in again.stderr


def test_enrolled_people_are_named_and_a_stranger_never_is(people, env):
    for name, files in (("astronaut", ["astronaut"]), ("obama", ["obama", "obama2"])):
        out = facelens("faces", "add", name, *(str(people[f]) for f in files), env=env)
        assert out.returncode == 0, out.stderr
    run = facelens("run", "--source", str(people["visits"]), env=env, timeout=240)
    assert run.returncode == 0, run.stderr
    events = [json.loads(x) for x in run.stdout.splitlines()]
    for e in events:
        validate(e, "event")
    tracks: dict[str, list[dict]] = {}
    for e in events:
        tracks.setdefault(e["track_id"], []).append(e)
    ends = [t[-1] for t in tracks.values()]
    assert [e["type"] for e in ends] == ["end"] * 3, [e["type"] for e in ends]
    names = [e["summary"]["identity"] for e in ends]
    assert names == ["astronaut", "obama", None], names  # in the order they visited
    stranger = list(tracks.values())[2]
    assert all(e["identity"]["name"] is None for e in stranger)
    assert stranger[-1]["identity"]["status"] == "unknown"
    assert stranger[-1]["identity"]["samples"] >= 5  # judged from several good samples
    for track, name in zip(tracks.values(), ["astronaut", "obama"], strict=False):
        # Named by an update once decided, never on the first sample.
        named = [e for e in track if e["identity"]["name"] == name]
        assert named and named[0]["type"] in ("new", "update")
        assert named[0]["identity"]["samples"] >= 3 and named[0]["identity"]["score"] >= 0.6
        print(f"{name}: named after {named[0]['identity']['samples']} samples, "
              f"score {named[0]['identity']['score']}")
    print(f"stranger: unknown after {stranger[-1]['identity']['samples']} samples, best score "
          f"{stranger[-1]['identity']['score']}")
    gallery_text = Path(env["FACELENS_IDENTITY_GALLERY_PATH"]).read_text()
    first = json.loads(gallery_text)["people"]["obama"][0][:3]
    assert str(first[0])[:8] not in run.stdout + run.stderr  # no embedding in any output


def test_a_gallery_changed_while_running_is_used_without_a_restart(people, env, tmp_path):
    env = {**env, "FACELENS_SOURCE_LOOP": "true", "FACELENS_SOURCE_LATEST_ONLY": "false"}
    proc = subprocess.Popen([*FACELENS, "run", "--source", str(people["obama3_video"])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    events: list[dict] = []
    threading.Thread(target=lambda: events.extend(json.loads(x) for x in proc.stdout),
                     daemon=True).start()
    err: list[str] = []
    threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True).start()

    def wait(predicate, what: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError(f"{what}\n{''.join(err)[-3000:]}")
            time.sleep(0.1)

    try:
        wait(lambda: any(e["type"] == "new" for e in events), "a first visit")
        assert all(e["identity"]["samples"] == 0 for e in events)  # nobody enrolled: no runs
        seen = len(events)
        out = facelens("faces", "add", "obama", str(people["obama"]), str(people["obama2"]),
                       env=env)
        assert out.returncode == 0, out.stderr
        wait(lambda: any(e["identity"]["name"] == "obama" for e in events[seen:]),
             "named once enrolled, without a restart")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert any("known faces: 1 people enrolled" in line for line in err)


def test_no_embedding_runs_while_nobody_is_enrolled(make_config, astronaut_clip, tmp_path):
    from facelens.edge.camera.pipeline import Pipeline
    from facelens.edge.sources import FrameReader, open_source

    cfg = make_config(identity={"gallery_path": str(tmp_path / "none.json")})
    pipeline = Pipeline(cfg)
    identity = pipeline.models.analyser("identity")
    assert identity is not None
    reader = FrameReader(open_source(str(astronaut_clip.path)))
    reader.start()
    events = []
    while (frame := reader.get()) is not None:
        events += pipeline.process(frame)
    assert events and all(e.identity is not None and e.identity.samples == 0 for e in events)
    assert pipeline.times.mean()["identity"] == 0.0


def test_people_come_and_go_in_home_assistant_discovery(people, env, tmp_path):
    """Enrolled: a presence sensor and a device trigger per person, retained for Home
    Assistant; removed: both are deleted (empty retained configs), the others stay."""
    from tests.mqtt_helpers import Broker
    from tests.test_mqtt import CAMERA, DEVICE, mqtt_env, retained

    broker = Broker(tmp_path).start()
    try:
        env = {**mqtt_env(env, broker, tmp_path), "FACELENS_SERVICE_MAX_FRAMES": "20"}
        for name, files in (("astronaut", ["astronaut"]), ("obama", ["obama", "obama2"])):
            assert facelens("faces", "add", name, *(str(people[f]) for f in files),
                            env=env).returncode == 0
        uid = f"facelens_{DEVICE}_{CAMERA}"
        sensor = f"homeassistant/binary_sensor/{uid}_person_obama/config"
        trigger = f"homeassistant/device_automation/{uid}_face_seen_obama/config"
        other = f"homeassistant/binary_sensor/{uid}_person_astronaut/config"
        assert facelens("run", "--source", str(people["visits"]), env=env).returncode == 0
        topics = dict(retained(broker.port, "homeassistant/#"))
        assert {sensor, trigger, other} <= set(topics)
        assert json.loads(topics[sensor])["value_template"] == \
            "{{ 'ON' if 'obama' in value_json.people else 'OFF' }}"
        # Its attributes: where and when the person was last seen, and how sure.
        assert json.loads(topics[sensor])["json_attributes_topic"] == \
            f"facelens/{DEVICE}/{CAMERA}/person/obama"
        where = f"facelens/{DEVICE}/{CAMERA}/person/astronaut"  # the one seen in 20 frames
        assert json.loads(topics[other])["json_attributes_topic"] == where
        seen = json.loads(dict(retained(broker.port, where))[where])
        assert seen["camera"] == CAMERA and seen["score"] >= 0.6 and seen["last_seen"]
        assert facelens("faces", "remove", "obama", env=env).returncode == 0
        assert facelens("run", "--source", str(people["visits"]), env=env).returncode == 0
        topics = dict(retained(broker.port, "homeassistant/#"))
        assert sensor not in topics and trigger not in topics and other in topics
    finally:
        broker.stop()
