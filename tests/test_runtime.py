"""Opening real TFLite models: verification against the manifest, and the CPU fallback."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from facelens.edge.contract import ManifestError, ModelManifest, preprocess
from facelens.edge.runtime.interpreter import open_model


@pytest.fixture
def emotion_copy(models_dir, tmp_path):
    """A private copy of the stock emotion model and manifest, safe to damage."""
    m = ModelManifest.load(models_dir / "emotion_mini_xception.json")
    shutil.copy(models_dir / m.file, tmp_path / m.file)
    return m.save(tmp_path / "emotion.json"), m


def test_stock_emotion_model_opens_on_cpu_and_runs(models_dir):
    model = open_model(models_dir / "emotion_mini_xception.json", edgetpu="off")
    assert "cpu" in model.backend
    assert model.quantization is None  # dynamic-range: float input
    face = np.full((80, 80, 3), 128, np.uint8)
    probs = model.run(preprocess(face, model.manifest.input))[0]
    assert probs.shape == (1, 7)
    assert probs.sum() == pytest.approx(1.0, abs=1e-3)


def test_missing_edgetpu_falls_back_to_cpu_and_says_why(models_dir):
    model = open_model(models_dir / "emotion_mini_xception.json", edgetpu="auto")
    assert model.backend.endswith("cpu (2 threads)")
    assert "Edge TPU delegate unavailable" in model.fallback_reason


def test_edgetpu_required_but_missing_is_an_error(models_dir):
    with pytest.raises(ManifestError, match="Edge TPU delegate unavailable"):
        open_model(models_dir / "emotion_mini_xception.json", edgetpu="on")


def test_missing_model_file_is_named(emotion_copy):
    manifest_path, m = emotion_copy
    (manifest_path.parent / m.file).unlink()
    with pytest.raises(ManifestError, match=f"model file not found: .*{m.file}"):
        open_model(manifest_path)


def test_corrupt_model_file_is_refused_by_hash(emotion_copy):
    manifest_path, m = emotion_copy
    path = manifest_path.parent / m.file
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ManifestError, match=f"expects {m.sha256}"):
        open_model(manifest_path)


def test_manifest_whose_input_shape_disagrees_is_refused(emotion_copy):
    manifest_path, _ = emotion_copy
    data = json.loads(manifest_path.read_text())
    data["input"].update(height=48, width=48)  # the paper's size, not this model's
    manifest_path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=r"takes input \(1, 64, 64, 1\).*says \(1, 48, 48, 1\)"):
        open_model(manifest_path)


def test_manifest_whose_labels_disagree_with_the_output_is_refused(emotion_copy):
    manifest_path, _ = emotion_copy
    data = json.loads(manifest_path.read_text())
    data.update(task="authenticity", labels=["real", "fake"])
    manifest_path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=r"outputs \(1, 7\).*needs \(1, 2\)"):
        open_model(manifest_path)


def test_wrong_input_tensor_is_refused_before_invoking(models_dir):
    model = open_model(models_dir / "emotion_mini_xception.json", edgetpu="off")
    with pytest.raises(ValueError, match=r"expects input \(1, 64, 64, 1\) float32"):
        model.run(np.zeros((1, 48, 48, 1), np.float32))
