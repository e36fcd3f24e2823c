"""int8, float16 and pruning for the face embedder (MobileFaceNet): do the same pairs still match?

    PYTHONPATH=. .venv/bin/python benchmarks/embedder_int8.py

The embedder ships only as a float .tflite; converter/from_tflite.py rebuilds it in Keras
(checked against the file), and the converter's own to_tflite makes each variant.

Faces: calibration (activation ranges, pruning's re-fit) from face-api's group photos 1-3
(every face of at least 24 px) and scikit-image's astronaut and cameraman; evaluation on the
rest of benchmarks/known_faces.py's labelled set, which calibration never sees: the faces of
at least 100 px in group photos 4-6 (all different people) and face_recognition's five
photos of Obama and one of Biden. Every face is aligned and embedded with its mirror, as the
service does. Reported per variant: cosine between its
embedding and the original file's (min, median), ROC AUC over all pairs, how many pairs change
their match decision at the service's threshold, size raw and gzipped, latency on one and two
threads; and the layers where int8 loses most (TensorFlow Lite's quantization debugger,
RMSE over the scale of each layer's output).
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def faces(cache: Path):
    """(calibration aligned faces, [(label, aligned face)] to evaluate)."""
    from benchmarks.known_faces import face_api_photos, labelled_photos
    from demo.scenes import astronaut, cameraman
    from facelens.edge.config import load_config
    from facelens.edge.contract import ModelManifest, align
    from facelens.edge.detect import DETECTORS
    from tests.face_photos import read

    cfg = load_config(None, environ={}, overrides={
        "runtime": {"models_dir": str(cache / "models"), "edgetpu": "off"}})
    det = DETECTORS["blazeface"](cfg)
    spec = ModelManifest.load(cache / "models" / "mobilefacenet.json").input
    calib, evaluate = [], []
    for i, image in enumerate(face_api_photos(cache / "wheels"), start=1):
        found = det.detect(image, cfg.detector.tiles)
        if i <= 3:
            calib += [align(image, f.keypoints, spec) for f in found if f.width >= 24]
            continue
        for k, f in enumerate([f for f in found if f.width >= 100]):
            evaluate.append((f"s{i}_{k}", align(image, f.keypoints, spec)))
    for photo in (astronaut(), cameraman()):
        f = max(det.detect(photo.image), key=lambda d: d.width)
        calib.append(align(photo.image, f.keypoints, spec))
    for name, path in labelled_photos(cache).items():
        image = read(path)
        f = max(det.detect(image), key=lambda d: d.width)
        evaluate.append(("obama" if name.startswith("obama") else name,
                         align(image, f.keypoints, spec)))
    return calib, evaluate, spec, cfg.identity.threshold


class Runner:
    """A .tflite embedder through the runtime: unit embedding of a face and its mirror."""

    def __init__(self, content: bytes, threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.it = Interpreter(model_content=content, num_threads=threads)
        self.it.allocate_tensors()
        self.inp, self.out = self.it.get_input_details()[0], self.it.get_output_details()[0]

    def _run(self, x: np.ndarray) -> np.ndarray:
        d = self.inp
        batch = int(d["shape"][0])
        scale, zero = d["quantization"]
        rows = []
        for i in range(0, len(x), batch):
            chunk = x[i:i + batch]
            if len(chunk) < batch:
                chunk = np.concatenate([chunk, chunk[:batch - len(chunk)]])
            if scale:
                chunk = np.clip(np.round(chunk / scale + zero), -128, 127)
            self.it.set_tensor(d["index"], chunk.astype(d["dtype"]))
            self.it.invoke()
            y = self.it.get_tensor(self.out["index"]).astype(np.float32)
            s, z = self.out["quantization"]
            rows.append((y - z) * s if s else y)
        return np.concatenate(rows)[:len(x)].reshape(len(x), -1)

    def embed(self, x: np.ndarray) -> np.ndarray:
        def unit(v: np.ndarray) -> np.ndarray:
            return v / np.linalg.norm(v, axis=1, keepdims=True)
        return unit(unit(self._run(x)) + unit(self._run(x[:, :, ::-1].copy())))

    def latency_ms(self, x: np.ndarray, runs: int = 30) -> float:
        """Median ms per face (the file runs two faces a call, the rebuilt models one)."""
        batch = int(self.inp["shape"][0])
        one = x[:batch]
        self._run(one)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            self._run(one)
            times.append((time.perf_counter() - t0) * 1000 / batch)
        return round(float(np.median(times)), 2)


def pair_scores(labels: list[str], emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pairs = list(itertools.combinations(range(len(labels)), 2))
    same = np.array([labels[a] == labels[b] for a, b in pairs])
    sims = np.array([float(emb[a] @ emb[b]) for a, b in pairs])
    return same, sims


def worst_layers(model, calib: np.ndarray, top: int = 6) -> list[tuple[str, float]]:
    """The layers whose int8 output differs most from float, relative to their scale."""
    import csv
    import io

    from facelens.converter.quantize import representative
    from facelens.workstation.tfenv import tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative(calib)
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=conv, debug_dataset=representative(calib, limit=16))
    debugger.run()
    out = io.StringIO()
    debugger.layer_statistics_dump(out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    scored = [(f"{r['op_name']} {r['tensor_name'].split(';')[0]}",
               float(np.sqrt(float(r["mean_squared_error"])) / float(r["scale"])))
              for r in rows if float(r["scale"] or 0) > 0]
    return sorted(scored, key=lambda t: -t[1])[:top]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sparsity", type=float, default=0.5)
    ap.add_argument("--channels", type=float, default=0.25)
    ap.add_argument("--views", type=int, default=20,
                    help="augmented views of each calibration face (and its mirror)")
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from sklearn.metrics import roc_auc_score

    from facelens.converter.augment import augmented_copies
    from facelens.converter.channels import macs, remove_channels
    from facelens.converter.from_tflite import load_tflite_as_keras
    from facelens.converter.quantize import to_tflite
    from facelens.converter.reconstruct import reconstruct
    from facelens.edge.contract import preprocess
    from facelens.workstation.kerasmodel import overall_sparsity

    cache = ROOT / ".cache"
    original = (cache / "models" / "MobileFaceNet.tflite").read_bytes()
    calib_faces, evaluate, spec, threshold = faces(cache)
    labels = [label for label, _ in evaluate]
    views, _ = augmented_copies(calib_faces, args.views, np.random.default_rng(0))
    x_cal = preprocess(views + [f[:, ::-1] for f in views], spec)
    x_eval = preprocess([f for _, f in evaluate], spec)
    people = len(set(labels))
    print(f"{len(calib_faces)} calibration faces ({len(x_cal)} inputs with views and "
          "mirrors); "
          f"{len(evaluate)} evaluated faces of {people} people, threshold {threshold:g}",
          file=sys.stderr)
    model = load_tflite_as_keras(cache / "models" / "MobileFaceNet.tflite")
    variants = {"original file (float32)": original,
                "float32 (rebuilt)": to_tflite(model, "float32"),
                "float16": to_tflite(model, "float16"),
                "dynamic": to_tflite(model, "dynamic"),
                "int8": to_tflite(model, "int8", x_cal)}
    prunable = {layer.name: args.sparsity for layer in model.layers
                if type(layer).__name__ == "Conv2D" and layer.kernel_size == (1, 1)}
    pruned = reconstruct(model, prunable, x_cal)
    label = f"pruned {args.sparsity:.0%} of 1×1 kernels ({overall_sparsity(pruned):.0%} of all)"
    variants[f"{label}, float32"] = to_tflite(pruned, "float32")
    variants[f"{label}, float32 sparse storage"] = to_tflite(pruned, "float32", sparse=True)
    variants[f"{label}, int8"] = to_tflite(pruned, "int8", x_cal)
    slim, _ = remove_channels(model, args.channels, x_cal)
    label = (f"{args.channels:.0%} of channels removed ({macs(slim) / macs(model):.0%} of the "
             "multiply-adds)")
    variants[f"{label}, float32"] = to_tflite(slim, "float32")

    ref = Runner(original).embed(x_eval)
    same, ref_sims = pair_scores(labels, ref)
    ref_match = ref_sims >= threshold
    print(f"\n{len(evaluate)} faces of {people} people; {int(same.sum())} same-person and "
          f"{int((~same).sum())} different-person pairs; threshold {threshold:g}\n")
    print("| variant | cosine to original, min / median | ROC AUC | pairs whose match "
          "changes | size B | gzip B | ms 1 thread | ms 2 threads |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, content in variants.items():
        run = Runner(content)
        emb = run.embed(x_eval)
        cos = np.sum(emb * ref, axis=1)
        _, sims = pair_scores(labels, emb)
        changed = int(np.sum((sims >= threshold) != ref_match))
        auc = roc_auc_score(same, sims)
        print(f"| {name} | {cos.min():.4f} / {np.median(cos):.4f} | {auc:.4f} | "
              f"{changed}/{len(sims)} | {len(content):,} | "
              f"{len(gzip.compress(content, 9)):,} | {run.latency_ms(x_eval)} | "
              f"{Runner(content, 2).latency_ms(x_eval)} |", flush=True)
    print("\nLayers where int8 loses most (RMSE / scale, quantization debugger on "
          "16 calibration inputs):\n\n| tensor | RMSE / scale |\n|---|---:|")
    for tensor, value in worst_layers(model, x_cal):
        print(f"| {tensor} | {value:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
