"""The command line: clear errors with non-zero exits, `check`, signals and systemd notify."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time

from tests.conftest import FACELENS
from tests.notify_drain import NotifyDrain


def facelens(*args: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*FACELENS, *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_check_reports_models_backends_and_source(astronaut_clip, cli_env):
    out = facelens("check", "--source", str(astronaut_clip.path), env=cli_env)
    assert out.returncode == 0, out.stderr
    assert "detector: blazeface_full_range on ai-edge-litert" in out.stdout
    assert "emotion: emotion_mini_xception on" in out.stdout
    assert "authenticity: off (no model configured)" in out.stdout
    assert "first frame 640x480, 0 face(s)" in out.stdout  # the clip starts with an empty room


def test_unknown_config_key_exits_2_naming_it(tmp_path, cli_env):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[tracker]\nconfirm_frame = 3\n")
    out = facelens("run", "--config", str(cfg), env=cli_env)
    assert out.returncode == 2
    assert "unknown config key 'tracker.confirm_frame'" in out.stderr and str(cfg) in out.stderr
    assert out.stdout == ""


def test_wrong_type_exits_2(tmp_path, cli_env):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[source]\nwidth = 'wide'\n")
    out = facelens("check", "--config", str(cfg), env=cli_env)
    assert out.returncode == 2 and "'source.width'" in out.stderr


def test_missing_model_exits_3_naming_key_and_path(tmp_path, cli_env):
    env = {**cli_env, "FACELENS_RUNTIME_MODELS_DIR": str(tmp_path)}
    out = facelens("run", "--source", "0", env=env)
    assert out.returncode == 3
    assert "detector.model = 'blazeface_full_range'" in out.stderr
    assert str(tmp_path / "blazeface_full_range.json") in out.stderr
    assert "facelens models fetch" in out.stderr


def test_corrupt_model_exits_3_with_the_hashes(tmp_path, models_dir, cli_env):
    for p in models_dir.iterdir():
        shutil.copy(p, tmp_path / p.name)
    model = tmp_path / "emotion_model_quantized.tflite"
    model.write_bytes(model.read_bytes()[:-10])
    env = {**cli_env, "FACELENS_RUNTIME_MODELS_DIR": str(tmp_path)}
    out = facelens("check", env=env)
    assert out.returncode == 3
    assert "emotion.model = 'emotion_mini_xception'" in out.stderr
    assert "has sha256" in out.stderr and "expects 65e3961b" in out.stderr


def test_detector_model_of_the_wrong_task_exits_3(cli_env):
    env = {**cli_env, "FACELENS_DETECTOR_MODEL": "emotion_mini_xception"}
    out = facelens("check", env=env)
    assert out.returncode == 3 and "is a emotion model, not a face detector" in out.stderr


def test_unreadable_source_exits_4(tmp_path, cli_env):
    out = facelens("run", "--source", str(tmp_path / "missing.mp4"), env=cli_env)
    assert out.returncode == 4
    assert f"video file not found: {tmp_path / 'missing.mp4'}" in out.stderr


def test_haar_needs_no_model_files(astronaut_clip, tmp_path, cli_env):
    env = {**cli_env, "FACELENS_RUNTIME_MODELS_DIR": str(tmp_path),
           "FACELENS_DETECTOR_KIND": "haar", "FACELENS_EMOTION_MODEL": "",
           "FACELENS_IDENTITY_MODEL": ""}
    out = facelens("run", "--source", str(astronaut_clip.path), env=env)
    assert out.returncode == 0, out.stderr
    events = [json.loads(x) for x in out.stdout.splitlines()]
    assert [e["type"] for e in events][:1] == ["new"] and events[-1]["type"] == "end"
    assert all(e["emotion"] is None for e in events)


def test_sigterm_ends_tracks_and_speaks_sd_notify(astronaut_clip, cli_env, tmp_path):
    drain = NotifyDrain(tmp_path / "notify.sock")
    env = {**cli_env, "NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "300000",
           "FACELENS_SOURCE_LOOP": "true", "FACELENS_SOURCE_LATEST_ONLY": "true"}
    proc = subprocess.Popen([*FACELENS, "run", "--source", str(astronaut_clip.path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = proc.stdout.readline()  # blocks until a face was confirmed: the loop runs
        assert json.loads(first)["type"] == "new"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and drain.pings() < 2:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        drain.close()
    messages = drain.messages
    assert proc.returncode == 0, err
    assert "SIGTERM received" in err
    assert messages[0] == "READY=1" and messages.count("WATCHDOG=1") >= 2
    assert messages[-1] == "STOPPING=1"
    events = [json.loads(first)] + [json.loads(x) for x in out.splitlines()]
    # Every track that was announced is ended on shutdown, so subscribers are not left hanging.
    news = {e["track_id"] for e in events if e["type"] == "new"}
    ends = {e["track_id"] for e in events if e["type"] == "end"}
    assert news and news == ends


def test_unusable_outbox_exits_2_naming_the_key(astronaut_clip, tmp_path, cli_env):
    (tmp_path / "a-file").write_text("")
    env = {**cli_env, "FACELENS_MQTT_HOST": "127.0.0.1",
           "FACELENS_MQTT_OUTBOX_PATH": str(tmp_path / "a-file" / "outbox.sqlite3")}
    out = facelens("run", "--source", str(astronaut_clip.path), env=env)
    assert out.returncode == 2
    lines = [x for x in out.stderr.splitlines() if x.startswith("facelens:")]
    assert lines == [x for x in out.stderr.splitlines() if "Error" in x or "facelens:" in x]
    assert len(lines) == 1 and "configuration error: mqtt.outbox_path = " in lines[0]
    assert "Traceback" not in out.stderr


def test_debug_prints_the_cause_chain_and_still_the_one_line(tmp_path, cli_env):
    env = {**cli_env, "FACELENS_RUNTIME_MODELS_DIR": str(tmp_path)}
    quiet = facelens("check", env=env)
    assert quiet.returncode == 3 and "Traceback" not in quiet.stderr
    loud = facelens("--debug", "check", env=env)
    also = facelens("check", env={**env, "FACELENS_DEBUG": "1"})
    for out in (loud, also):
        assert out.returncode == 3
        assert "Traceback" in out.stderr
        assert "The above exception was the direct cause" in out.stderr  # raise … from exc
        assert out.stderr.rstrip().splitlines()[-1].startswith("facelens: model error: ")
