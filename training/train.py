"""Train an emotion or authenticity CNN: data → contract → model → fit → report → manifest.

The input contract (size, colour, range) is an edge.contract.InputSpec, every image goes
through edge.contract.preprocess, and the saved model travels with its manifest, so the
converter and the device feed it exactly as it was trained.
"""

from __future__ import annotations

import logging
import platform
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from facelens.edge.config import default_models_dir
from facelens.edge.contract import (
    AUTHENTICITY_LABELS,
    FER2013_LABELS,
    Colour,
    InputSpec,
    ModelManifest,
    OutputSpec,
    Provenance,
    preprocess,
    sha256_file,
)
from facelens.training import report
from facelens.training.archs import ARCHS
from facelens.training.selfblend import self_blended_set
from facelens.training.splits import authenticity_splits, emotion_splits, stratified_split
from facelens.workstation.datasets import DatasetError, FaceSet, read_faces, read_image_folder
from facelens.workstation.faceswap import swap_set
from facelens.workstation.kerasmodel import find_manifest, load_keras, loss_for
from facelens.workstation.landmarks import open_landmarker
from facelens.workstation.metrics import classification_metrics
from facelens.workstation.tfenv import keras, tf

log = logging.getLogger(__name__)


@dataclass
class TrainOptions:
    task: str = "emotion"  # or "authenticity"
    arch: str = "paper"  # or "edge"
    epochs: int = 100
    batch_size: int = 64
    learning_rate: float = 1e-3
    patience: int = 10
    seed: int = 0
    size: int = 48
    colour: Colour = "gray"
    range: tuple[float, float] = (0.0, 1.0)
    augment: bool = True
    class_weights: bool = True
    self_blend: bool = False
    #: Self-blend mask: "landmarks" (the face mesh's hull, SBI's choice; the ellipse for a
    #: face the landmark model does not see) or "ellipse".
    mask: str = "landmarks"
    #: Where the stock face_landmark model is (default: the device's models directory).
    models_dir: Path | None = None
    #: Transfer learning: start from this model (its manifest sets the contract) …
    init: Path | None = None
    init_manifest: Path | None = None
    #: … training only its last N layers (None: all), on at most `shots` images per class.
    trainable_layers: int | None = None
    shots: int | None = None


def classes_for(task: str) -> tuple[str, ...]:
    if task == "emotion":
        return FER2013_LABELS
    if task == "authenticity":
        return AUTHENTICITY_LABELS
    raise ValueError(f"unknown task {task!r}: emotion or authenticity")


def load_splits(data: Path, opts: TrainOptions) -> dict[str, FaceSet]:
    if opts.task == "emotion":
        return emotion_splits(data, opts.seed)
    if not opts.self_blend:
        return authenticity_splits(data, opts.seed)
    # Self-blended: only real faces are needed. Fakes are made per face, and a face and its
    # fake stay in the same split, or the test would have seen half of every pair.
    real = (read_image_folder(data / "real") if (data / "real").is_dir() else read_faces(data))
    if len(real) < 4:
        raise DatasetError(f"{data}: {len(real)} real faces; self-blending needs at least 4")
    keep, held = stratified_split(np.zeros(len(real), np.int64), 0.2, opts.seed)
    # Landmarks: the blend masks (with --mask landmarks) and the face-swap evaluation.
    landmarker = open_landmarker(opts.models_dir or default_models_dir())
    points = ([landmarker.points(face) for face in real.images] if landmarker
              else [None] * len(real))
    masks = points if opts.mask == "landmarks" else [None] * len(real)
    out = {}
    for name, idx in (("train", keep), ("val", held)):
        images, labels = self_blended_set([real.images[i] for i in idx], opts.seed + len(name),
                                          [masks[i] for i in idx])
        out[name] = FaceSet(images, labels, AUTHENTICITY_LABELS)
    # Fakes made another way, from the held-out real faces only, never trained on.
    if landmarker is not None:
        images, labels = swap_set([real.images[i] for i in held], [points[i] for i in held])
        if len(images):
            out["face_swap"] = FaceSet(images, labels, AUTHENTICITY_LABELS)
    log.info("self-blend masks: %s (%d of %d faces with landmarks)", opts.mask,
             sum(p is not None for p in points), len(real))
    return out


def few_shot(faces: FaceSet, shots: int, seed: int) -> FaceSet:
    rng = np.random.default_rng(seed)
    idx = []
    for k in np.unique(faces.y):
        members = np.flatnonzero(faces.y == k)
        idx += list(rng.choice(members, min(shots, len(members)), replace=False))
    return faces.subset(sorted(idx))


def contract(opts: TrainOptions) -> tuple[InputSpec, ModelManifest | None]:
    if opts.init is not None:
        base = find_manifest(opts.init, opts.init_manifest)
        return base.input, base
    channels: Literal[1, 3] = 1 if opts.colour == "gray" else 3
    return InputSpec(height=opts.size, width=opts.size, channels=channels, colour=opts.colour,
                     range=opts.range), None


def output_for(classes: tuple[str, ...]) -> OutputSpec:
    """Two classes: one sigmoid unit for the positive (last) one, e.g. `fake`; more: softmax."""
    if len(classes) == 2:
        return OutputSpec(activation="sigmoid", positive=classes[-1])
    return OutputSpec(activation="softmax")


def build_model(opts: TrainOptions, spec: InputSpec, output: OutputSpec,
                classes: tuple[str, ...]):
    shape = (spec.height, spec.width, spec.channels)
    if opts.init is None:
        if opts.arch not in ARCHS:
            raise ValueError(f"unknown --arch {opts.arch!r}: {', '.join(ARCHS)}")
        return ARCHS[opts.arch](shape, output, classes)
    model = load_keras(opts.init)
    if model.output_shape[-1] != output.width(classes):
        # A new head for a new set of classes, on the features the old model learnt.
        from facelens.training.archs import head

        model = keras.Model(model.input, head(model.layers[-2].output, output, classes))
    if opts.trainable_layers is not None:
        for layer in model.layers[:-opts.trainable_layers]:
            layer.trainable = False
    for layer in model.layers:  # few images: keep the learnt normalisation statistics
        if isinstance(layer, keras.layers.BatchNormalization) and opts.trainable_layers:
            layer.trainable = False
    return model


def augmenter(seed: int):
    """Rotation, flip, zoom and shift, as the paper's recipe; applied to training batches."""
    return keras.Sequential([
        keras.layers.RandomFlip("horizontal", seed=seed),
        keras.layers.RandomRotation(0.05, fill_mode="reflect", seed=seed + 1),
        keras.layers.RandomZoom(0.1, fill_mode="reflect", seed=seed + 2),
        keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed + 3),
    ], name="augmentation")


def dataset(x: np.ndarray, y: np.ndarray, opts: TrainOptions, training: bool):
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if training:
        ds = ds.shuffle(len(x), seed=opts.seed, reshuffle_each_iteration=True)
    ds = ds.batch(opts.batch_size)
    if training and opts.augment:
        aug = augmenter(opts.seed)
        ds = ds.map(lambda a, b: (aug(a, training=True), b),
                    num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def balanced_weights(labels: np.ndarray, classes: int) -> dict[int, float]:
    """n / (k · count): FER-2013's 547 `disgust` faces weigh as much as its 8,989 `happy`."""
    counts = np.bincount(labels, minlength=classes).astype(np.float64)
    present = counts > 0
    w = np.where(present, len(labels) / (present.sum() * np.maximum(counts, 1)), 0.0)
    return {k: float(w[k]) for k in range(classes)}


def train(data: str | Path, out_dir: str | Path, opts: TrainOptions) -> dict:
    """Run the whole recipe; returns the metrics (also in metrics.json)."""
    data, out = Path(data), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(opts.seed)
    # The same data, options and seed give the same model: without this, TensorFlow's
    # multi-threaded CPU kernels sum in varying order and small runs drift apart.
    tf.config.experimental.enable_op_determinism()
    classes = classes_for(opts.task)
    splits = load_splits(data, opts)
    if opts.shots:
        splits["train"] = few_shot(splits["train"], opts.shots, opts.seed)
    spec, base = contract(opts)
    output = output_for(classes)
    model = build_model(opts, spec, output, classes)
    xs = {name: preprocess(s.images, spec) for name, s in splits.items()}
    ys = {name: output.targets(s.y, classes) for name, s in splits.items()}
    model.compile(optimizer=keras.optimizers.Adam(opts.learning_rate),
                  loss=loss_for(output.activation), metrics=["accuracy"])

    backup = out / "backup"
    resumed = backup.exists()
    history_csv = out / "history.csv"
    if not resumed and history_csv.exists():
        history_csv.unlink()
    callbacks = [
        keras.callbacks.BackupAndRestore(str(backup)),  # an interrupted run resumes here
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=opts.patience,
                                      restore_best_weights=True),
        keras.callbacks.ModelCheckpoint(str(out / "best.keras"), monitor="val_loss",
                                        save_best_only=True),
        keras.callbacks.CSVLogger(str(history_csv), append=True),
    ]
    weights = (balanced_weights(splits["train"].y, len(classes))
               if opts.class_weights else None)
    t0 = time.time()
    model.fit(dataset(xs["train"], ys["train"], opts, training=True),
              validation_data=dataset(xs["val"], ys["val"], opts, training=False),
              epochs=opts.epochs, class_weight=weights, callbacks=callbacks, verbose=2)
    seconds = time.time() - t0

    model_path = out / "model.keras"
    model.save(model_path)
    history = _read_history(history_csv)
    evaluation: dict[str, dict] = {}
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in ("val", "test", "face_swap"):
        if name in splits:
            probs = output.probabilities(model.predict(xs[name], verbose=0, batch_size=256),
                                         classes)
            evaluation[name] = classification_metrics(splits[name].y, probs, classes)
            if len(classes) == 2:
                curves[name] = (splits[name].y, probs[:, 1])
    if curves:
        report.plot_roc(curves, out / "roc.png", f"{opts.task}: ROC per evaluation set")
    final = "test" if "test" in evaluation else "val"
    report.plot_curves(history, out / "curves.png")
    report.plot_confusion(evaluation[final]["confusion_matrix"], classes,
                          out / "confusion.png", f"{opts.task} ({final} set)")
    manifest = ModelManifest(
        name=f"{opts.task}_{opts.arch if base is None else 'finetuned'}", task=opts.task,
        file=model_path.name, sha256=sha256_file(model_path), labels=classes, input=spec,
        output=output,
        licence=base.licence if base else "",
        provenance=Provenance(source=f"facelens-train {opts.task}", path=str(data),
                              notes=f"arch {opts.arch}, seed {opts.seed}"
                              + (f", from {opts.init}" if opts.init else "")))
    manifest.save(out / "model.json")
    metrics = {
        "task": opts.task, "arch": opts.arch, "seed": opts.seed, "resumed": resumed,
        "epochs_run": len(history.get("loss", [])), "seconds": round(seconds, 1),
        "parameters": int(model.count_params()),
        "samples": {k: len(v) for k, v in splits.items()},
        **({"self_blend_mask": opts.mask} if opts.self_blend else {}),
        "evaluated_on": final, **evaluation,
    }
    report.write_json(metrics, out / "metrics.json")
    report.write_json({"options": {k: str(v) if isinstance(v, Path) else v
                                   for k, v in asdict(opts).items()},
                       "data": str(data), "tensorflow": tf.__version__,
                       "python": platform.python_version()}, out / "run.json")
    if backup.exists():
        shutil.rmtree(backup, ignore_errors=True)
    log.info("%s: %s accuracy %.3f", out, final, evaluation[final]["accuracy"])
    return metrics


def _read_history(path: Path) -> dict[str, list[float]]:
    import csv

    if not path.exists():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows] for k in (rows[0] if rows else {}) if k != "epoch"}


__all__ = ["TrainOptions", "train"]
