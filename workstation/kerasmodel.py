"""Load a trained Keras model, find its manifest, and measure its sparsity."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facelens.edge.contract import ManifestError, ModelManifest
from facelens.workstation.tfenv import keras


class ModelLoadError(ValueError):
    """The model file cannot be loaded; the message names it and says why."""


def load_keras(path: str | Path):
    """A .keras or .h5/.hdf5 file, or a SavedModel directory, loaded without its optimizer."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"model not found: {path}")
    if path.is_dir() and not (path / "saved_model.pb").is_file():
        raise ModelLoadError(f"{path} is a folder but not a SavedModel (no saved_model.pb)")
    if path.is_file() and path.suffix.lower() not in (".keras", ".h5", ".hdf5"):
        raise ModelLoadError(f"{path}: expected a .keras, .h5 or .hdf5 file or a SavedModel "
                             "folder")
    try:
        model = keras.models.load_model(str(path), compile=False)
    except Exception as exc:  # Keras raises OSError, ValueError, KeyError… for bad files
        raise ModelLoadError(f"cannot load Keras model {path}: {type(exc).__name__}: "
                             f"{str(exc)[:300]}") from exc
    if not isinstance(model, keras.Model):
        raise ModelLoadError(f"{path} holds a SavedModel without a Keras model; export it "
                             "with model.save() from Keras")
    return model


def find_manifest(model_path: str | Path, explicit: str | Path | None = None) -> ModelManifest:
    """The contract the model was trained with: --manifest, else `<model>.json` beside it
    (training writes one). Never guessed: a wrong input range is the silent bug we avoid."""
    if explicit is not None:
        return ModelManifest.load(explicit)
    sidecar = Path(model_path).with_suffix(".json")
    if Path(model_path).is_dir():
        sidecar = Path(model_path) / "manifest.json"
    if sidecar.is_file():
        return ModelManifest.load(sidecar)
    raise ManifestError(f"no manifest for {model_path}: pass --manifest (e.g. "
                        "models/emotion_mini_xception.json for the stock emotion model) so the "
                        "converter feeds the model exactly as it was trained")


def loss_for(activation: str):
    """Cross-entropy against the targets `OutputSpec.targets` makes (one-hot labels, a
    positive-class column for sigmoid) or soft teacher targets, per output kind."""
    if activation == "sigmoid":
        return "binary_crossentropy"
    return keras.losses.CategoricalCrossentropy(from_logits=activation == "logits")


def check_model_fits(model, manifest: ModelManifest, model_path: str | Path) -> None:
    spec = manifest.input
    shape = tuple(model.input_shape[1:])
    if shape != (spec.height, spec.width, spec.channels):
        raise ManifestError(f"{model_path} takes input {shape}, but manifest {manifest.name!r} "
                            f"says {(spec.height, spec.width, spec.channels)}")
    out = model.output_shape[-1]
    want = manifest.output_width
    if out != want:
        raise ManifestError(f"{model_path} has {out} outputs, but manifest {manifest.name!r} "
                            f"needs {want}")


def kernel_sparsity(model) -> dict[str, float]:
    """Fraction of exactly-zero weights per kernel, keyed `layer/kernel`. tfmot prunes a
    SeparableConv2D's pointwise kernel only, so its two kernels are reported apart."""
    out = {}
    for layer in model.layers:
        for w in layer.weights:
            short = w.name.split("/")[-1].split(":")[0]
            if "kernel" in short:
                k = w.numpy()
                out[f"{layer.name}/{short}"] = round(float(np.mean(k == 0)), 4)
    return out


def overall_sparsity(model) -> float:
    total = zeros = 0
    for layer in model.layers:
        for w in layer.weights:
            if "kernel" in w.name:
                k = w.numpy()
                total += k.size
                zeros += int(np.sum(k == 0))
    return zeros / total if total else 0.0
