"""One step from a trained Keras CNN to the .tflite the device runs: prune, quantise, measure.

Every conversion is measured against the original Keras model on held-out faces through the
device's own runtime and preprocessing, next to an unpruned baseline, so the cost of each
choice (agreement, size raw and gzipped, latency) is visible before anything ships.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facelens.converter import fidelity
from facelens.converter.augment import augmented_copies
from facelens.converter.channels import ChannelError, macs, remove_channels
from facelens.converter.prune import (
    PruneError,
    Recipe,
    check_sparsity,
    layer_sensitivity,
    prune,
    teacher_targets,
)
from facelens.converter.quantize import MODES, Mode, QuantizeError, quantization_aware, to_tflite
from facelens.edge.contract import ModelManifest, Provenance, preprocess, sha256_file
from facelens.edge.runtime.interpreter import open_model
from facelens.workstation.datasets import DatasetError, FaceSet, read_faces
from facelens.workstation.kerasmodel import (
    check_model_fits,
    find_manifest,
    kernel_sparsity,
    load_keras,
    overall_sparsity,
)
from facelens.workstation.metrics import classification_metrics

log = logging.getLogger(__name__)

AUTO_SPARSITIES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: Views (the face and augmented variants) of each validation face early stopping scores.
VALIDATION_VIEWS = 8


class ConvertError(ValueError):
    """Bad input to the converter; the message names what and why."""


@dataclass
class ConvertOptions:
    mode: Mode = "int8"
    #: None: no pruning; a float in (0, 1): that sparsity; "auto": the highest sparsity whose
    #: converted model still agrees with the original at least `threshold` of the time.
    prune: float | str | None = None
    threshold: float = 0.9
    #: None: keep every channel; a share in (0, 1): remove that share of the channels of
    #: every convolution that feeds exactly one other (converter/channels.py), re-fitting
    #: the next; pruning, if asked, then starts from the slimmer model.
    channels: float | None = None
    epochs: int = Recipe.epochs
    holdout: float = 0.3
    #: Augmented views of each fine-tuning face.
    augment_copies: int = 40
    #: Share of the fine-tuning faces kept out of it to pick the best epoch (early stopping).
    validation: float = 0.2
    #: Layers left dense when pruning (None: the small ones, see converter.prune).
    keep_dense: tuple[str, ...] | None = None
    #: How the sparsity is shared between layers: "sensitivity" or "uniform".
    allocation: str = "sensitivity"
    tflite_runtime_214: bool = False
    name: str | None = None
    seed: int = 0


@dataclass
class Candidate:
    """One converted model and what it was measured to do."""

    label: str
    tflite: bytes
    keras_model: object
    metrics: dict = field(default_factory=dict)


@dataclass
class Data:
    manifest: ModelManifest
    calib: FaceSet
    held_out: FaceSet
    x_calib: np.ndarray
    reference: np.ndarray  # the original model's probabilities on the held-out faces
    #: Where the held-out faces came from: a split of the calibration set, or a folder.
    held_out_from: str = "split"


def _split(faces: FaceSet, holdout: float, seed: int) -> tuple[FaceSet, FaceSet]:
    n = len(faces)
    if n < 4:
        raise ConvertError(f"calibration set has {n} image(s); at least 4 are needed (some "
                           "calibrate, the others are held out to measure fidelity)")
    order = np.random.default_rng(seed).permutation(n)
    n_eval = min(n - 2, max(2, round(n * holdout)))
    return faces.subset(order[n_eval:]), faces.subset(order[:n_eval])


@dataclass
class Finetune:
    """What pruning fine-tunes on, and the faces kept out of it to pick its best epoch."""

    x: np.ndarray
    targets: np.ndarray
    how: str  # "labels" or "distillation"
    x_val: np.ndarray  # the validation faces, each in VALIDATION_VIEWS views
    reference_val: np.ndarray  # the original's outputs on them
    val_faces: int


def _finetune_targets(original, data: Data, opts: ConvertOptions) -> Finetune:
    """Inputs and targets for fine-tuning: labels when the set has them, else distillation
    from the original model's outputs; each face also in `augment_copies` augmented
    variants. A share of the faces (never their variants) is kept out for validation."""
    rng = np.random.default_rng(opts.seed)
    m = data.manifest
    n = len(data.calib)
    n_val = round(n * opts.validation) if n >= 10 else 0
    order = rng.permutation(n)
    fit, val = data.calib.subset(order[n_val:]), data.calib.subset(order[:n_val])
    images, origin = augmented_copies(fit.images, opts.augment_copies, rng)
    x = preprocess(images, m.input)
    # Each validation face in a few views too: agreement on a dozen faces alone moves in
    # steps of 8 %, too coarse to tell one epoch from the next.
    x_val = (preprocess(augmented_copies(val.images, VALIDATION_VIEWS - 1, rng)[0], m.input)
             if n_val else x[:0])
    ref_val = (m.probabilities(original.predict(x_val, verbose=0)) if n_val
               else np.zeros((0, m.output_width), np.float32))
    if fit.labels is not None:
        return Finetune(x, m.output.targets(fit.labels[origin], m.labels), "labels", x_val,
                        ref_val, n_val)
    return Finetune(x, teacher_targets(original, x, m.output.activation), "distillation",
                    x_val, ref_val, n_val)


def _measure(cand: Candidate, data: Data, workdir: Path) -> dict:
    """Write the candidate with a manifest, open it with the device runtime, measure it."""
    path = workdir / f"{cand.label}.tflite"
    path.write_bytes(cand.tflite)
    manifest = data.manifest.model_copy(update={"file": path.name,
                                                "sha256": sha256_file(path)})
    mpath = manifest.save(workdir / f"{cand.label}.json")
    model = open_model(mpath, edgetpu="off", num_threads=2)
    probs = fidelity.run_tflite(model, data.held_out.images)
    latency = fidelity.latency_ms(model, data.held_out.images[0])
    one = fidelity.latency_ms(open_model(mpath, edgetpu="off", num_threads=1),
                              data.held_out.images[0])
    m = {"variant": cand.label, **fidelity.agreement(data.reference, probs),
         "size": fidelity.sizes(path), "latency_ms": latency,
         "threads": {"1": one["median"], "2": latency["median"]},
         "sparsity": round(overall_sparsity(cand.keras_model), 4),
         "input": {"dtype": str(model.input_dtype),
                   "quantization": None if model.quantization is None else
                   [model.quantization.scale, model.quantization.zero_point]},
         "ops": fidelity.op_names(model), "edgetpu": fidelity.edgetpu_verdict(model)}
    if data.held_out.labels is not None:
        m["labelled"] = classification_metrics(data.held_out.labels, probs,
                                               data.manifest.labels)
    cand.metrics = m
    return m


def _convert(keras_model, label: str, opts: ConvertOptions, data: Data, *,
             mode: Mode | None = None, sparse: bool = False) -> Candidate:
    tfl = to_tflite(keras_model, mode or opts.mode, data.x_calib, sparse=sparse,
                    tflite_runtime_214=opts.tflite_runtime_214)
    return Candidate(label, tfl, keras_model)


def _load(model_path: Path, calibration: Path, manifest_path: Path | None,
          opts: ConvertOptions, held_out_path: Path | None = None) -> tuple[object, Data]:
    original = load_keras(model_path)
    manifest = find_manifest(model_path, manifest_path)
    check_model_fits(original, manifest, model_path)
    try:
        faces = read_faces(calibration, classes=manifest.labels)
    except DatasetError as exc:
        raise ConvertError(f"calibration data: {exc}") from exc
    if held_out_path is None:
        calib, held_out = _split(faces, opts.holdout, opts.seed)
    else:
        try:
            held_out = read_faces(held_out_path, classes=manifest.labels)
        except DatasetError as exc:
            raise ConvertError(f"--held-out data: {exc}") from exc
        if len(faces) < 2 or len(held_out) < 2:
            raise ConvertError(f"--held-out needs at least 2 faces in each set; calibration "
                               f"has {len(faces)}, held-out {len(held_out)}")
        calib = faces
    x_calib = preprocess(calib.images, manifest.input)
    x_eval = preprocess(held_out.images, manifest.input)
    reference = manifest.probabilities(original.predict(x_eval, verbose=0))
    return original, Data(manifest, calib, held_out, x_calib, reference,
                          "split" if held_out_path is None else str(held_out_path))


def convert(model_path: str | Path, calibration: str | Path, out_dir: str | Path,
            opts: ConvertOptions | None = None, *,
            manifest_path: str | Path | None = None,
            held_out: str | Path | None = None) -> dict:
    """Convert and report; returns the report (also written as report.json / report.md).
    `held_out`: faces only the report's figures are measured on (default: a share of the
    calibration faces)."""
    opts = opts or ConvertOptions()
    if opts.mode not in MODES:
        raise ConvertError(f"--quantize {opts.mode!r}: choose from {', '.join(MODES)}")
    if isinstance(opts.prune, float):
        try:
            check_sparsity(opts.prune)
        except PruneError as exc:
            raise ConvertError(f"--prune: {exc}") from exc
    elif opts.prune not in (None, "auto"):
        raise ConvertError(f"--prune {opts.prune!r}: a sparsity in (0, 1) or 'auto'")
    if opts.channels is not None and not 0.0 < opts.channels < 1.0:
        raise ConvertError(f"--channels {opts.channels}: a share of channels in (0, 1)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    original, data = _load(Path(model_path), Path(calibration),
                           Path(manifest_path) if manifest_path else None, opts,
                           Path(held_out) if held_out else None)
    act = data.manifest.output.activation
    ft = _finetune_targets(original, data, opts)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base_model = original
        if opts.mode == "qat":
            if data.calib.labels is None:
                raise ConvertError("--quantize qat needs labelled calibration data (a FER-2013 "
                                   "CSV or class subfolders)")
            base_model = quantization_aware(original, ft.x, ft.targets, activation=act,
                                            seed=opts.seed)
        baseline = _convert(base_model, f"{opts.mode}", opts, data)
        _measure(baseline, data, work)
        baseline.metrics["macs"] = macs(original)
        variants = [baseline]
        chosen, trials = baseline, list[dict]()
        start = original
        if opts.channels is not None:
            try:
                start, kept = remove_channels(original, opts.channels, ft.x)
            except ChannelError as exc:
                raise ConvertError(f"--channels: {exc}") from exc
            chosen = _convert(start, f"{opts.mode}_channels_{round(opts.channels * 100)}",
                              opts, data)
            _measure(chosen, data, work)
            chosen.metrics.update(macs=macs(start), channels_kept=kept)
            variants.append(chosen)
        if opts.prune is not None:
            sparsities = ([opts.prune] if isinstance(opts.prune, float) else
                          list(AUTO_SPARSITIES))
            unpruned = chosen
            chosen, trials = _prune_search(start, sparsities, opts, data, work, ft,
                                           unpruned, auto=opts.prune == "auto")
            if chosen is not unpruned:
                variants.append(chosen)
                sparse = _convert(chosen.keras_model, "float32_pruned_sparse_kernels", opts,
                                  data, mode="float32", sparse=True)
                dense = _convert(chosen.keras_model, "float32_pruned_dense", opts, data,
                                 mode="float32")
                for v in (dense, sparse):
                    _measure(v, data, work)
                    variants.append(v)
        name = opts.name or (
            f"{data.manifest.name}_{opts.mode}"
            + (f"_channels{round(opts.channels * 100)}" if opts.channels is not None else "")
            + (f"_sparse{round(chosen.metrics['sparsity'] * 100)}"
               if chosen.metrics["sparsity"] > 0.005 else ""))
        report = _write(chosen, variants, trials, name, data, opts, Path(model_path), out_dir,
                        ft)
    return report


def _prune_search(original, sparsities: list[float], opts: ConvertOptions, data: Data,
                  work: Path, ft: Finetune, baseline: Candidate, auto: bool
                  ) -> tuple[Candidate, list[dict]]:
    """Prune `original` (the model pruning starts from: the source, or its slimmer copy) to
    each sparsity asked (or bisect the ladder for 'auto'), keep the highest that passes the
    agreement threshold; the unpruned `baseline` if none does."""
    act = data.manifest.output.activation
    trials: list[dict] = []
    best: Candidate | None = None
    recipe = Recipe(epochs=opts.epochs, keep_dense=opts.keep_dense,
                    allocation=opts.allocation)

    def attempt(s: float) -> Candidate:
        try:
            result = prune(original, ft.x, ft.targets, sparsity=s, activation=act,
                           recipe=recipe, validation=(ft.x_val, ft.reference_val),
                           distil=ft.how == "distillation", seed=opts.seed)
        except PruneError as exc:
            raise ConvertError(f"--prune {s}: {exc}") from exc
        model = result.model
        if opts.mode == "qat":
            model = quantization_aware(model, ft.x, ft.targets, activation=act,
                                       seed=opts.seed)
        cand = _convert(model, f"{opts.mode}_pruned_{round(s * 100)}", opts, data)
        m = _measure(cand, data, work)
        layers = (layer_sensitivity(original, ft.x_val, ft.reference_val, result.layers, s)
                  if len(ft.x_val) else result.layers)
        trials.append({"target_sparsity": s, "achieved_sparsity": m["sparsity"],
                       "top1_agreement": m["top1_agreement"], "finetune_loss": result.final_loss,
                       "validation_agreement": result.validation_agreement,
                       "best_epoch": result.best_epoch, "epochs_run": len(result.history),
                       "layers": [vars(lp) for lp in layers],
                       "passed": m["top1_agreement"] >= opts.threshold})
        log.info("pruned to %.0f%%: agreement %.3f", s * 100, m["top1_agreement"])
        return cand

    if not auto:
        cand = attempt(sparsities[0])
        return cand, trials
    lo, hi = 0, len(sparsities) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        try:
            cand = attempt(sparsities[mid])
        except ConvertError as exc:  # out of reach with these layers: as good as failed
            trials.append({"target_sparsity": sparsities[mid], "passed": False,
                           "unreachable": str(exc)})
            hi = mid - 1
            continue
        if cand.metrics["top1_agreement"] >= opts.threshold:
            best, lo = cand, mid + 1
        else:
            hi = mid - 1
    return (best or baseline), trials


def _write(chosen: Candidate, variants: list[Candidate], trials: list[dict], name: str,
           data: Data, opts: ConvertOptions, model_path: Path, out_dir: Path,
           ft: Finetune) -> dict:
    path = out_dir / f"{name}.tflite"
    path.write_bytes(chosen.tflite)
    m = chosen.metrics
    notes = (f"{opts.mode}; sparsity {m['sparsity']:.0%}; top-1 agreement with the Keras "
             f"original {m['top1_agreement']:.1%} on {len(data.held_out)} held-out faces")
    manifest = data.manifest.model_copy(update={
        "name": name, "file": path.name, "sha256": sha256_file(path),
        "provenance": Provenance(source=f"facelens-convert:{model_path.name}",
                                 path=str(model_path), notes=notes)})
    manifest.save(out_dir / f"{name}.json")
    report = {
        "model": str(model_path), "output": str(path), "manifest": str(out_dir / f"{name}.json"),
        "mode": opts.mode, "prune": opts.prune, "channels": opts.channels,
        "threshold": opts.threshold,
        "passed": m["top1_agreement"] >= opts.threshold,
        "calibration_images": len(data.calib), "held_out_images": len(data.held_out),
        "held_out_from": data.held_out_from, "validation_images": ft.val_faces,
        "augment_copies": opts.augment_copies,
        "labelled": data.held_out.labels is not None, "finetune": ft.how,
        "chosen": m, "layer_sparsity": kernel_sparsity(chosen.keras_model),
        "variants": [v.metrics for v in variants], "prune_trials": trials,
        "edgetpu_compiler": fidelity.run_edgetpu_compiler(path, out_dir)
        if opts.mode in ("int8", "uint8", "qat") else {"ran": False,
                                                       "how": "only full-integer models"},
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "report.md").write_text(summary(report))
    return report


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def summary(report: dict) -> str:
    """The readable report: what was made, how faithful, what each variant costs."""
    c = report["chosen"]
    lines = [f"# Conversion report: {Path(report['output']).name}", "",
             f"- source: `{report['model']}`; mode **{report['mode']}**, prune "
             f"{report['prune']}, channels removed {report.get('channels')}; fine-tuning by "
             f"{report['finetune']}",
             f"- faces: {report['calibration_images']} for calibration and fine-tuning "
             f"({report['validation_images']} of them kept out of fine-tuning to pick its "
             f"best epoch), {report['held_out_images']} held out for these figures ("
             + ("a split of the calibration set" if report["held_out_from"] == "split"
                else f"from {report['held_out_from']}") + ")",
             f"- top-1 agreement with the Keras original: **{c['top1_agreement']:.1%}** "
             f"(threshold {report['threshold']:.0%}: "
             f"{'passed' if report['passed'] else 'FAILED'}); mean |Δp| "
             f"{c['mean_abs_prob_diff']:.4f}, max {c['max_abs_prob_diff']:.4f}",
             f"- Edge TPU: {'compatible' if c['edgetpu']['compatible'] else 'not compatible'}"
             + ("" if c["edgetpu"]["compatible"] else f" ({'; '.join(c['edgetpu']['reasons'])})"),
             ""]
    if "labelled" in c:
        lab = c["labelled"]
        lines.insert(-1, f"- accuracy {lab['accuracy']:.1%}, macro precision "
                         f"{lab['macro']['precision']:.3f}, recall {lab['macro']['recall']:.3f}, "
                         f"F1 {lab['macro']['f1']:.3f}")
    lines += ["| variant | sparsity | multiply-adds | agreement | size | gzip | "
              "latency ms, 1 / 2 threads |", "|---|---|---|---|---|---|---|"]
    for v in report["variants"]:
        lines.append(f"| {v['variant']} | {v['sparsity']:.0%} | "
                     + (f"{v['macs']:,}" if "macs" in v else "—")
                     + f" | {v['top1_agreement']:.1%} | "
                     f"{v['size']['bytes']:,} | {v['size']['gzip_bytes']:,} | "
                     f"{v['threads']['1']:.3f} / {v['threads']['2']:.3f} |")
    measured = [t for t in report["prune_trials"] if "unreachable" not in t]
    if report["prune_trials"]:
        lines += ["", "Pruning trials (best epoch 0: the pruned and re-fit model agreed "
                  "better than any fine-tuned epoch):", "", "| target | achieved | agreement | "
                  "validation agreement (best epoch) | passed |", "|---|---|---|---|---|"]
        lines += [f"| {t['target_sparsity']:.0%} | {t['achieved_sparsity']:.0%} | "
                  f"{t['top1_agreement']:.1%} | {_share(t['validation_agreement'])} "
                  f"(epoch {t['best_epoch']} of {t['epochs_run']}) | {t['passed']} |"
                  if "unreachable" not in t else
                  f"| {t['target_sparsity']:.0%} | — | — | {t['unreachable']} | False |"
                  for t in report["prune_trials"]]
    if measured:
        last = measured[-1]
        lines += ["", f"Layers at {last['target_sparsity']:.0%} (sensitivity: agreement on the "
                  "validation faces with only that layer pruned to the target, no "
                  "fine-tuning):", "", "| layer | prunable weights | sparsity given | "
                  "agreement pruned alone |", "|---|---:|---:|---:|"]
        lines += [f"| {lp['name']} | {lp['weights']:,} | {lp['sparsity']:.0%} | "
                  f"{_share(lp['alone_agreement'])} |" for lp in last["layers"]]
    comp = report["edgetpu_compiler"]
    lines += ["", "Edge TPU compiler: " + (f"{comp.get('ops_on_tpu')} ops on the TPU, "
                                           f"{comp.get('ops_on_cpu')} on the CPU"
                                           if comp.get("ran") else comp["how"]), ""]
    return "\n".join(lines)


__all__ = ["ConvertError", "ConvertOptions", "PruneError", "QuantizeError", "convert"]
