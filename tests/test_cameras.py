"""Several cameras in one daemon: shared models, one loop that serves them in turn, per-camera
events, state, topics and Home Assistant entities; a camera that is away touches no other."""

from __future__ import annotations

import json
import socket

import pytest

from demo.scenes import astronaut_video
from facelens.edge.config import ConfigError
from facelens.edge.service.daemon import Daemon
from tests.mqtt_helpers import Broker
from tests.test_analysers import Collect
from tests.test_mqtt import retained, validate


@pytest.fixture(scope="module")
def second_clip(tmp_path_factory):
    """The astronaut again, arriving later and staying shorter: another camera's view."""
    return astronaut_video(tmp_path_factory.mktemp("video2") / "hall.avi", empty_before=20,
                           face_frames=30, empty_after=15)


@pytest.fixture(scope="module")
def far_clip(tmp_path_factory):
    """A garden camera's view: the astronaut far away (a 32-px face, drifting), which the
    whole-frame pass cannot resolve and a tiled full scan can."""
    from demo.scenes import astronaut, background, paste_face, write_video

    photo = astronaut()
    frames = [background() for _ in range(5)]
    for i in range(25):
        canvas = background()
        paste_face(canvas, photo, 300 + i, 200, 32)
        frames.append(canvas)
    frames += [background() for _ in range(15)]
    return write_video(tmp_path_factory.mktemp("video3") / "garden.avi", frames)


def summary(events, camera):
    return [(e.type, e.track_id.split("-")[-1], e.emotion.label if e.emotion else None)
            for e in events if e.camera == camera]


def test_three_cameras_give_each_the_events_one_camera_alone_gives(
        make_config, astronaut_clip, second_clip, far_clip):
    """Door, hall and garden (small faces: its own tiles) in one daemon: each camera's tracks
    and labels are exactly what a daemon of its own gives on the same video."""
    cams = [{"name": "door", "uri": str(astronaut_clip.path)},
            {"name": "hall", "uri": str(second_clip.path)},
            {"name": "garden", "uri": str(far_clip), "tiles": [3, 2]}]
    together = Collect()
    daemon = Daemon(make_config(cameras=cams, mqtt={"stats_interval_s": 3600}),
                    publishers=[together])
    assert len({id(c.pipeline.models) for c in daemon.cameras}) == 1  # models loaded once
    assert daemon.run() == 0
    for cam in cams:
        alone = Collect()
        assert Daemon(make_config(cameras=[cam]), publishers=[alone]).run() == 0
        assert summary(together.events, cam["name"]) == summary(alone.events, cam["name"])
        assert summary(alone.events, cam["name"])  # something happened to compare
    assert {s.camera for s in together.states} == {"door", "hall", "garden"}
    last = together.stats[-1]  # the closing report covers the whole run
    assert set(last.cameras) == {"door", "hall", "garden"}
    assert last.frames_processed == astronaut_clip.total_frames + 65 + 45
    for name in ("door", "hall", "garden"):
        own = last.cameras[name]
        assert own.latency_ms["frame"] > 0 and own.economy["full_scans"] >= 1, name
        assert own.process_fps > 0, name
    assert max(c.latency_ms["frame"] for c in last.cameras.values()) == \
        last.latency_ms["frame"]  # the top level: the busiest camera's
    stats = json.loads(last.to_json())
    validate(stats, "stats")
    for e in together.events:
        validate(json.loads(e.to_json()), "event")


def test_a_camera_scans_with_its_own_tiles(make_config, far_clip, tmp_path):
    """One detector, two grids: with the whole frame only ([detector] tiles = [1, 1], every
    frame a full scan), the far face is missed on the door camera and found on the garden
    camera, which has tiles of its own."""
    import shutil

    door = tmp_path / "door.avi"
    shutil.copy(far_clip, door)  # the same view on both; two cameras may not share a uri
    cams = [{"name": "door", "uri": str(door)},
            {"name": "garden", "uri": str(far_clip), "tiles": [2, 2]}]
    out = Collect()
    cfg = make_config(cameras=cams, detector={"tiles": [1, 1]}, motion={"enabled": False})
    assert [c.detector.tiles for c in cfg.camera_configs()] == [(1, 1), (2, 2)]
    assert Daemon(cfg, publishers=[out]).run() == 0
    assert [e.type for e in out.events if e.camera == "door"] == []
    garden = [e.type for e in out.events if e.camera == "garden"]
    assert garden[0] == "new" and garden[-1] == "end", garden
    with pytest.raises(ConfigError, match="cameras\\[2\\].tiles"):
        make_config(cameras=[cams[0], {**cams[1], "tiles": [0, 2]}])


def test_a_camera_with_frames_to_spare_does_not_starve_another(make_config, astronaut_clip,
                                                               second_clip):
    """A looping file always has a frame; the other camera still gets every other turn."""
    cams = [{"name": "busy", "uri": str(astronaut_clip.path), "loop": True},
            {"name": "quiet", "uri": str(second_clip.path)}]
    out = Collect()
    daemon = Daemon(make_config(cameras=cams, service={"max_frames": 120}),
                    publishers=[out])
    assert daemon.run() == 0
    busy, quiet = (c.frames for c in daemon.cameras)
    assert busy == quiet == 60  # turn about: half of the 120 frames each


def test_a_camera_that_is_away_touches_no_other(make_config, astronaut_clip):
    """An RTSP camera nobody serves is retried in the background; the door camera's events
    and state flow meanwhile, and the away camera's health says so."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    cams = [{"name": "garden", "uri": f"rtsp://127.0.0.1:{port}/cam", "open_timeout_s": 1},
            {"name": "door", "uri": str(astronaut_clip.path)}]
    out = Collect()
    daemon = Daemon(make_config(cameras=cams, service={"max_frames": astronaut_clip.total_frames}),
                    publishers=[out])
    assert daemon.run() == 0
    assert next(e.type for e in out.events if e.camera == "door") == "new"
    assert not [e for e in out.events if e.camera == "garden"]
    garden = out.stats[-1].cameras["garden"]
    assert garden.status in ("reconnecting", "stalled") and garden.camera_fps == 0


def test_each_camera_has_its_topics_and_entities_under_one_device(make_config, astronaut_clip,
                                                                  second_clip, tmp_path):
    broker = Broker(tmp_path).start()
    try:
        cams = [{"name": "door", "uri": str(astronaut_clip.path)},
                {"name": "hall", "uri": str(second_clip.path)}]
        cfg = make_config(cameras=cams, service={"device_id": "house"}, mqtt={
            "host": "127.0.0.1", "port": broker.port,
            "outbox_path": str(tmp_path / "outbox.sqlite3")})
        assert Daemon(cfg).run() == 0
        topics = dict(retained(broker.port, "#"))
        for cam in ("door", "hall"):
            state = json.loads(topics[f"facelens/house/{cam}/state"])
            assert state["camera"] == cam
            config = json.loads(topics[f"homeassistant/sensor/facelens_house_{cam}_faces/config"])
            assert config["state_topic"] == f"facelens/house/{cam}/state"
            assert config["device"]["identifiers"] == ["facelens_house"]  # one device
            # One device, two cameras: the trigger's type names the camera (Home Assistant
            # refuses a second trigger with the same type and subtype on one device).
            trig = json.loads(topics[f"homeassistant/device_automation/"
                                     f"facelens_house_{cam}_face_seen_happy/config"])
            assert trig["type"] == f"face_seen_{cam}"
            assert trig["topic"] == f"facelens/house/{cam}/trigger/face_seen/happy"
            event = json.loads(topics[f"homeassistant/event/facelens_house_{cam}_events/config"])
            assert f"value_json.camera == '{cam}'" in event["value_template"]
        assert sum("_fps/config" in t for t in topics) == 1  # the device's own, once
        stats = json.loads(topics["facelens/house/stats"])
        assert set(stats["cameras"]) == {"door", "hall"}
    finally:
        broker.stop()


@pytest.mark.parametrize(("cameras", "message"), [
    ([{"name": "door", "uri": "a.mp4"}, {"name": "door", "uri": "b.mp4"}],
     "cameras 1 and 2 have the same name 'door'"),
    ([{"name": "door", "uri": "a.mp4"}, {"name": "hall", "uri": "a.mp4"}],
     "cameras 1 and 2 have the same uri 'a.mp4'"),
    ([{"name": "door", "uri": "a.mp4"}, {"name": "hall", "uri": "b.mp4", "fsp": 5}],
     "unknown config key 'cameras\\[2\\].fsp'"),
])
def test_camera_mistakes_name_the_camera_and_the_key(make_config, cameras, message):
    with pytest.raises(ConfigError, match=message):
        make_config(cameras=cameras)


def test_cameras_in_a_file_with_their_own_motion_masks(tmp_path, models_dir):
    from facelens.edge.config import load_config

    path = tmp_path / "config.toml"
    path.write_text(f"""
[runtime]
models_dir = "{models_dir}"
[motion]
threshold = 25
[[cameras]]
name = "door"
uri = "rtsp://door.local/stream"
[[cameras]]
name = "garden"
uri = "rtsp://garden.local/stream"
[cameras.motion]
masks = [[[0, 0], [200, 0], [200, 120], [0, 120]]]
""")
    door, garden = load_config(path, environ={}).camera_configs()
    assert (door.source.name, door.motion.threshold, door.motion.masks) == ("door", 25, [])
    assert garden.source.uri == "rtsp://garden.local/stream" and garden.motion.masks


def test_snapshot_takes_the_camera_it_is_asked_for(cli_env, astronaut_clip, second_clip,
                                                   tmp_path):
    import subprocess
    import sys

    config = tmp_path / "config.toml"
    config.write_text(f"""
[[cameras]]
name = "door"
uri = "{astronaut_clip.path}"
[[cameras]]
name = "hall"
uri = "{second_clip.path}"
""")
    facelens = [sys.executable, "-m", "facelens.edge.cli"]
    out = tmp_path / "hall.jpg"
    done = subprocess.run([*facelens, "snapshot", "--config", str(config), "--camera", "hall",
                           "--out", str(out)], env=cli_env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 1000
    done = subprocess.run([*facelens, "snapshot", "--config", str(config), "--camera",
                           "garden", "--out", str(out)], env=cli_env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert "--camera 'garden': no such camera (the config has door, hall)" in done.stderr
    done = subprocess.run([*facelens, "check", "--config", str(config)], env=cli_env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "source: door:" in done.stdout and "source: hall:" in done.stdout


@pytest.mark.timeout(240)
def test_the_live_page_picks_a_camera(cli_env, astronaut_clip, second_clip, tmp_path):
    import shutil
    import subprocess
    import sys

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from tests.mqtt_helpers import free_port
    from tests.test_web import LiveDaemon

    config = tmp_path / "config.toml"
    config.write_text(f"""
[[cameras]]
name = "door"
uri = "{astronaut_clip.path}"
loop = true
[[cameras]]
name = "hall"
uri = "{second_clip.path}"
loop = true
""")
    port = free_port()
    env = {**cli_env, "FACELENS_OUTPUT_STDOUT": "false", "FACELENS_WEB_ENABLED": "true",
           "FACELENS_WEB_LISTEN": f"127.0.0.1:{port}"}
    proc = subprocess.Popen([sys.executable, "-m", "facelens.edge.cli", "run", "--config",
                             str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    page = LiveDaemon.__new__(LiveDaemon)  # its HTTP helpers, on this daemon
    page.port = port
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        opts.add_argument(arg)
    driver = None
    try:
        from tests.mqtt_helpers import wait_port

        wait_port(port, timeout=60)
        for cam in ("door", "hall"):
            status, jpeg = page.get(f"/snapshot.jpg?camera={cam}")
            assert status == 200 and jpeg[:2] == b"\xff\xd8", cam
        assert set(page.stats()["states"]) == {"door", "hall"}
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
        driver.set_page_load_timeout(30)
        driver.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(driver, 40)
        wait.until(lambda d: d.find_element(By.ID, "picker").is_displayed())
        pick = Select(driver.find_element(By.ID, "pick"))
        assert [o.text for o in pick.options] == ["door", "hall"]
        pick.select_by_visible_text("hall")
        wait.until(lambda d: "camera=hall" in d.find_element(By.ID, "stream")
                   .get_attribute("src"))
        wait.until(lambda d: d.execute_script(
            "return document.getElementById('stream').naturalWidth") == 640)
    finally:
        if driver is not None:
            driver.quit()
        proc.terminate()
        proc.wait(timeout=30)
