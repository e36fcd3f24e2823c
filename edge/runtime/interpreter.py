"""Open a verified .tflite model with the TFLite runtime the device has.

LiteRT (`ai-edge-litert`) comes first, `tflite-runtime` is the fallback for platforms without
a LiteRT wheel. The Edge TPU delegate is used when asked for and present; when it is asked for
and missing the model runs on the CPU and `backend` says so, because a Pi owner would rather
have slow answers than none.
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from facelens.edge.contract import (
    DETECTION_TASK,
    EMBEDDING_TASK,
    LANDMARK_TASK,
    ManifestError,
    ModelManifest,
    Quantization,
    dequantize,
)
from facelens.edge.errors import FaceLensError

log = logging.getLogger(__name__)

EDGETPU_LIBRARY = "libedgetpu.so.1"
EdgeTpuMode = Literal["off", "auto", "on"]


class RuntimeMissingError(FaceLensError, RuntimeError):
    """No TFLite runtime package is installed."""

    exit_code = 3
    kind = "model error"


def import_runtime() -> tuple[Any, str]:
    """Return (interpreter module, description) of the first runtime found."""
    for module, dist in (("ai_edge_litert.interpreter", "ai-edge-litert"),
                         ("tflite_runtime.interpreter", "tflite-runtime")):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        try:
            from importlib.metadata import version

            return mod, f"{dist} {version(dist)}"
        except Exception:  # metadata can be absent in odd installs; the name is enough
            return mod, dist
    raise RuntimeMissingError(
        "no TFLite runtime: install the edge extra (pip install 'facelens[edge]', which brings "
        "ai-edge-litert) or tflite-runtime==2.14.0"
    )


@functools.cache
def _edgetpu_library_loads() -> str:
    """'' when libedgetpu loads, else why not. Asked once per process: every model would
    otherwise log the same warning, and LiteRT's failed Delegate prints a stray traceback."""
    try:
        ctypes.CDLL(EDGETPU_LIBRARY)
    except OSError as exc:
        return str(exc)
    return ""


def _load_edgetpu_delegate(mod: Any, mode: EdgeTpuMode) -> tuple[Any | None, str]:
    if mode == "off":
        return None, ""
    problem = _edgetpu_library_loads()
    if not problem:
        try:
            return mod.load_delegate(EDGETPU_LIBRARY), ""
        except (ValueError, OSError, RuntimeError) as exc:
            problem = str(exc)
    reason = f"Edge TPU delegate unavailable ({problem}); running on CPU"
    if reason not in _warned:  # once per process, not once per model
        _warned.add(reason)
        log.warning(reason)
    return None, reason


_warned: set[str] = set()


@dataclass
class TFLiteModel:
    """A model verified against its manifest and ready to run."""

    manifest: ModelManifest
    path: Path
    interpreter: Any
    backend: str
    input_details: dict
    output_details: list[dict]
    quantization: Quantization | None
    fallback_reason: str = ""
    last_latency_ms: float = 0.0

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self.input_details["dtype"])

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Invoke on one preprocessed batch-of-one; returns every output, dequantised."""
        shape = tuple(int(x) for x in self.input_details["shape"])
        if tensor.shape != shape or tensor.dtype != self.input_dtype:
            raise ValueError(f"model {self.manifest.name!r} expects input {shape} "
                             f"{self.input_dtype}, got {tensor.shape} {tensor.dtype}")
        t0 = time.perf_counter()
        self.interpreter.set_tensor(self.input_details["index"], tensor)
        self.interpreter.invoke()
        outs = [dequantize(self.interpreter.get_tensor(d["index"]), d)
                for d in self.output_details]
        self.last_latency_ms = (time.perf_counter() - t0) * 1000.0
        return outs


class ModelStage:
    """A stage built on one model (a classifier, an embedder): its manifest, name, where it
    runs and how long its last run took."""

    def __init__(self, model: TFLiteModel) -> None:
        self.model = model
        self.manifest = model.manifest
        self.backend = model.backend

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def last_latency_ms(self) -> float:
        return self.model.last_latency_ms


def open_model(manifest_path: str | Path, *, edgetpu: EdgeTpuMode = "off",
               num_threads: int = 2) -> TFLiteModel:
    """Load the manifest, verify the file's hash and tensor shapes, and build the interpreter."""
    manifest_path = Path(manifest_path)
    manifest = ModelManifest.load(manifest_path)
    path = manifest.model_path(manifest_path)
    manifest.verify_file(path)
    mod, runtime_name = import_runtime()
    delegate, reason = _load_edgetpu_delegate(mod, edgetpu)
    try:
        if delegate is not None:
            interp = mod.Interpreter(model_path=str(path), experimental_delegates=[delegate])
            backend = f"{runtime_name} / edgetpu"
        else:
            interp = mod.Interpreter(model_path=str(path), num_threads=num_threads)
            backend = (f"{runtime_name} / cpu ({num_threads} thread"
                       f"{'' if num_threads == 1 else 's'})")
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        hint = (" (an *_edgetpu.tflite model needs the Edge TPU delegate)"
                if "edgetpu" in str(exc).lower() else "")
        raise ManifestError(f"model file {path} cannot be loaded by {runtime_name}: {exc}{hint}") \
            from exc
    inputs = interp.get_input_details()
    outputs = interp.get_output_details()
    _check_shapes(manifest, path, inputs, outputs)
    quant = Quantization.from_tensor_details(inputs[0])
    if edgetpu == "on" and delegate is None:
        raise ManifestError(reason)
    return TFLiteModel(manifest, path, interp, backend, inputs[0], list(outputs), quant, reason)


def _check_shapes(manifest: ModelManifest, path: Path, inputs: list[dict],
                  outputs: list[dict]) -> None:
    spec = manifest.input
    if len(inputs) != 1:
        raise ManifestError(f"model {path} has {len(inputs)} inputs; FaceLens models have one")
    expected = (spec.batch, spec.height, spec.width, spec.channels)
    got = tuple(int(x) for x in inputs[0]["shape"])
    if got != expected:
        raise ManifestError(f"model {path} takes input {got}, but manifest {manifest.name!r} "
                            f"says {expected} (batch, height, width, channels)")
    if manifest.task == DETECTION_TASK:
        n_anchors = anchor_count(manifest, spec.height, spec.width)
        shapes = sorted(tuple(int(x) for x in o["shape"]) for o in outputs)
        want = sorted([(1, n_anchors, 1), (1, n_anchors, 16)])
        if shapes != want:
            raise ManifestError(f"detector {path} outputs {shapes}, but its manifest's anchors "
                                f"need {want}")
        return
    if manifest.task == EMBEDDING_TASK:
        got_out = tuple(int(x) for x in outputs[0]["shape"])
        if len(outputs) != 1 or got_out != (spec.batch, manifest.output.dims):
            raise ManifestError(f"embedding model {path} outputs {got_out}, but manifest "
                                f"{manifest.name!r} needs ({spec.batch}, "
                                f"{manifest.output.dims})")
        return
    if manifest.task == LANDMARK_TASK:
        widths = [int(np.prod(o["shape"])) for o in outputs]
        if not any(w >= 18 and w % 3 == 0 for w in widths):
            raise ManifestError(f"landmark model {path} outputs {widths} values; expected x, y, "
                                "z per point")
        return
    n_out = manifest.output_width
    got_out = tuple(int(x) for x in outputs[0]["shape"])
    if len(outputs) != 1 or got_out != (1, n_out):
        raise ManifestError(f"model {path} outputs {got_out}, but manifest {manifest.name!r} "
                            f"({manifest.output.activation}, {len(manifest.labels)} labels) "
                            f"needs (1, {n_out})")


def anchor_count(manifest: ModelManifest, height: int, width: int) -> int:
    return sum((height // a.stride) * (width // a.stride) * a.per_cell
               for a in manifest.output.anchors)
