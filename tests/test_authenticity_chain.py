"""The README's walk-through, command by command: collect real faces on the device → train
with self-blending on the workstation → convert to int8 → install on the device → events and
the Home Assistant "fake face" entity appear. On a real-photo room video, with the real CLIs.

The model learns from a dozen faces here, so only the chain is checked, not its accuracy."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from demo.scenes import room_camera_video
from tests.conftest import FACELENS
from tests.mqtt_helpers import Broker, Subscriber

pytest.importorskip("facelens.workstation.tfenv")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def run(cmd: list[str], env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(cmd)}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    return out


def test_collect_train_convert_install_run(models_dir, astronaut_clip, cli_env, tmp_path):
    # On the device: the owner collects real faces from the camera.
    video = room_camera_video(tmp_path / "room.avi", seconds=45, visitors=4, seed=11)
    crops = tmp_path / "crops"
    out = run([*FACELENS, "collect", "--source", str(video.path), "--out", str(crops)],
              cli_env)
    pngs = sorted(crops.glob("*.png"))
    assert len(pngs) >= 8 and f"{len(pngs)} face crops of " in out.stdout
    side = json.loads(pngs[0].with_suffix(".json").read_text())
    assert {"track_id", "time", "box", "keypoints", "frontal", "sharpness"} <= set(side)
    assert len(side["keypoints"]) == 6

    # On the workstation: self-blended training from those real faces only, then int8.
    train = [sys.executable, "-m", "facelens.training.cli", "authenticity", "--self-blend",
             "--data", str(crops), "--out", str(tmp_path / "run"), "--epochs", "6",
             "--batch-size", "8", "--patience", "6"]
    run(train, cli_env)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["task"] == "authenticity" and "roc_auc" in metrics["val"]
    run([sys.executable, "-m", "facelens.converter.cli", str(tmp_path / "run" / "model.keras"),
         "--calibration", str(crops), "--out", str(tmp_path / "conv"), "--quantize", "int8",
         "--threshold", "0.5"], cli_env)
    model = next((tmp_path / "conv").glob("*.tflite"))

    # Back on the device: install, and run with MQTT.
    served = tmp_path / "models"
    shutil.copytree(models_dir, served)
    broker = Broker(tmp_path).start()
    config = tmp_path / "config.toml"
    config.write_text(f'[runtime]\nmodels_dir = "{served}"\nedgetpu = "off"\n\n'
                      f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n'
                      f'outbox_path = "{tmp_path / "outbox.sqlite3"}"\n\n'
                      '[service]\ndevice_id = "shelf"\n')
    env = {k: v for k, v in cli_env.items() if not k.startswith("FACELENS_")}
    env["PYTHONPATH"] = cli_env["PYTHONPATH"]
    out = run([*FACELENS, "models", "install", str(model), "--config", str(config)], env)
    assert "authenticity.model = " in out.stdout
    sub = Subscriber(broker.port, ["facelens/#", "homeassistant/#"])
    try:
        out = run([*FACELENS, "run", "--config", str(config), "--source",
                   str(astronaut_clip.path)], env)
        assert sub.wait(lambda s: s.on("facelens/shelf/available")[-1:] == [b"offline"])
    finally:
        sub.close()
        broker.stop()
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert events and all(e["authenticity"] is not None for e in events)
    assert events[0]["authenticity"]["label"] in ("real", "fake")
    fake = sub.on("homeassistant/binary_sensor/facelens_shelf_camera_fake/config")
    assert fake and json.loads(fake[-1])["device_class"] == "problem"
    states = sub.json("facelens/shelf/camera/state")
    assert states and all(s["authenticity_enabled"] for s in states)
