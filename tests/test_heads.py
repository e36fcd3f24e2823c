"""Classifier heads are data: a third head comes from a manifest and a config entry alone.

The third head here is a real model through the real runtime: the stock mini-Xception file
under a manifest of its own (task `expression`, its own label names), added by a
`[heads.expression]` table. No code knows the name; events, state, stats and Home Assistant
discovery must all carry it, and every payload must still follow its JSON Schema.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from facelens.edge.analyse.heads import HeadRule
from facelens.edge.contract import ModelManifest
from tests.conftest import FACELENS
from tests.mqtt_helpers import Broker, Subscriber
from tests.test_mqtt import validate

pytestmark = pytest.mark.timeout(180)
LABELS = ["anger", "disgust", "fear", "joy", "sadness", "surprise", "calm"]


@pytest.fixture
def third_head_models(models_dir, tmp_path):
    """The stock models plus an `expression` manifest for the emotion model's file."""
    folder = tmp_path / "models"
    shutil.copytree(models_dir, folder)
    stock = ModelManifest.load(folder / "emotion_mini_xception.json")
    stock.model_copy(update={"name": "expression_v1", "task": "expression",
                             "labels": tuple(LABELS)}).save(folder / "expression_v1.json")
    return folder


def test_a_third_head_from_a_manifest_and_config_alone(third_head_models, astronaut_clip,
                                                        cli_env, tmp_path):
    env = {**cli_env, "FACELENS_RUNTIME_MODELS_DIR": str(third_head_models)}
    broker = Broker(tmp_path).start()
    sub = Subscriber(broker.port, ["facelens/#", "homeassistant/#"])
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"""
[heads.expression]
model = "expression_v1"

[mqtt]
host = "127.0.0.1"
port = {broker.port}
outbox_path = "{tmp_path / 'outbox.sqlite3'}"
stats_interval_s = 0.3

[service]
device_id = "pi"
""")
    try:
        out = subprocess.run([*FACELENS, "run", "--config", str(cfg), "--source",
                              str(astronaut_clip.path)], capture_output=True, text=True,
                             env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        assert sub.wait(lambda s: s.on("facelens/pi/available")[-1:] == [b"offline"])
    finally:
        sub.close()
        broker.stop()
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert events[0]["type"] == "new" and events[-1]["type"] == "end"
    for e in events:
        validate(e, "event")
        head = e["heads"]["expression"]
        assert set(head["probabilities"]) == set(LABELS) and head["label"] in LABELS
        # The same model under two heads: the same smoothed probabilities, by position.
        assert [head["probabilities"][k] for k in LABELS] == pytest.approx(
            list(e["emotion"]["probabilities"].values()), abs=1e-4)
    assert events[0]["heads"]["expression"]["label"] == "joy"  # the astronaut smiles
    assert events[0]["emotion"]["label"] == "happy"  # the documented head is unchanged
    assert events[-1]["summary"]["heads"] == {"expression": "joy"}
    states = sub.json("facelens/pi/camera/state")
    for s in states:
        validate(s, "state")
    assert {"faces": 1, "expression": "joy"} in [
        {"faces": s["faces"], "expression": s["heads"]["expression"]} for s in states]
    stats = sub.json("facelens/pi/stats")
    for s in stats:
        validate(s, "stats")
    assert "expression_v1 on ai-edge-litert" in stats[-1]["models"]["expression"]
    assert "expression" in stats[-1]["latency_ms"]
    topic = "homeassistant/sensor/facelens_pi_camera_head_expression/config"
    sensor = json.loads(sub.on(topic)[-1])
    assert sensor["options"] == [*LABELS, "none"]
    assert sensor["value_template"] == "{{ value_json.heads.expression or 'none' }}"


def test_a_head_whose_manifest_serves_another_task_is_refused(third_head_models, cli_env,
                                                              tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[heads.mask]\nmodel = "expression_v1"\n')
    env = {**cli_env, "FACELENS_RUNTIME_MODELS_DIR": str(third_head_models)}
    out = subprocess.run([*FACELENS, "check", "--config", str(cfg)], capture_output=True,
                         text=True, env=env, timeout=60)
    assert out.returncode == 3
    assert ("heads.mask.model = 'expression_v1' is a expression model, not a mask model"
            in out.stderr)


def test_a_two_label_head_reports_its_positive_class_at_its_threshold():
    rule = HeadRule("mask", ("none", "mask"), positive=1, threshold=0.3)
    assert rule.labels[rule.decide(np.array([0.65, 0.35]))] == "mask"
    assert rule.labels[rule.decide(np.array([0.75, 0.25]))] == "none"
    many = HeadRule("mood", ("a", "b", "c"))
    assert many.decide(np.array([0.2, 0.5, 0.3])) == 1
