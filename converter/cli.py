"""facelens-convert: a trained Keras CNN in, a verified .tflite + manifest + report out.

    facelens-convert MODEL --calibration DATA [--held-out DATA] [--prune SPARSITY|auto]
                     [--channels SHARE] [--quantize MODE] [--keep-dense LAYERS] [--manifest FILE]
                     [--threshold 0.9] --out DIR

Exit status: 0 converted and faithful; 1 converted but top-1 agreement below --threshold;
2 bad input (model, manifest, calibration data, option), with a message naming it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from facelens.edge.contract import ManifestError
from facelens.edge.errors import show_cause


def _prune_arg(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected a sparsity like 0.5 or 'auto', got {text!r}") from exc


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="facelens-convert", description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path, help=".keras, .h5/.hdf5 or SavedModel folder")
    ap.add_argument("--calibration", type=Path, required=True,
                    help="face images: a folder (class subfolders give labels), a FER-2013 CSV, "
                         "or an .npy array")
    ap.add_argument("--held-out", type=Path,
                    help="faces the report is measured on and nothing else (same forms as "
                         "--calibration; default: 30 %% of the calibration faces)")
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--manifest", type=Path,
                    help="the model's contract (default: <model>.json beside it)")
    ap.add_argument("--quantize", default="int8",
                    choices=["float32", "float16", "dynamic", "int8", "uint8", "qat"],
                    help="int8/uint8: full integer, Edge TPU ready (default int8)")
    ap.add_argument("--prune", type=_prune_arg, default=None,
                    help="target sparsity in (0, 1), or 'auto' for the highest that keeps "
                         "agreement above --threshold")
    ap.add_argument("--channels", type=float,
                    help="remove this share (0-1) of the channels of every convolution that "
                         "feeds exactly one other, re-fitting the next one: fewer "
                         "multiply-adds on every runtime, which unstructured --prune does not "
                         "give a model this small (pruning, if asked too, starts from the "
                         "slimmer model)")
    ap.add_argument("--threshold", type=float, default=0.9,
                    help="minimum top-1 agreement with the Keras model (default 0.9)")
    ap.add_argument("--epochs", type=int,
                    help="fine-tuning epochs when pruning, at most (default 40; it stops early "
                         "when agreement on faces held back from fine-tuning stops improving)")
    ap.add_argument("--augment-copies", type=int,
                    help="augmented views of each fine-tuning face (default 40)")
    ap.add_argument("--allocation", choices=["sensitivity", "uniform"], default="sensitivity",
                    help="how the sparsity is shared between layers: by each layer's measured "
                         "sensitivity (default) or evenly")
    ap.add_argument("--keep-dense", type=lambda t: tuple(n for n in t.split(",") if n),
                    help="comma-separated layer names never pruned (default: layers under 2 %% "
                         "of the weights; with --allocation uniform the output layer too)")
    ap.add_argument("--tflite-runtime-214", action="store_true",
                    help="keep dense layers per-tensor so tflite-runtime 2.14 loads the model")
    ap.add_argument("--name", help="output model name (default from manifest and mode)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--debug", action="store_true",
                    help="on an error, also print its cause chain with tracebacks "
                         "(or set FACELENS_DEBUG=1)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from facelens.converter.convert import ConvertError, ConvertOptions, convert, summary
    from facelens.converter.quantize import QuantizeError
    from facelens.workstation.kerasmodel import ModelLoadError

    given = {k: v for k, v in (("epochs", args.epochs),
                               ("augment_copies", args.augment_copies)) if v is not None}
    opts = ConvertOptions(mode=args.quantize, prune=args.prune, threshold=args.threshold,
                          channels=args.channels,
                          tflite_runtime_214=args.tflite_runtime_214, name=args.name,
                          seed=args.seed, keep_dense=args.keep_dense,
                          allocation=args.allocation, **given)
    try:
        report = convert(args.model, args.calibration, args.out, opts,
                         manifest_path=args.manifest, held_out=args.held_out)
    except (ConvertError, ModelLoadError, ManifestError, QuantizeError) as exc:
        show_cause(exc, args.debug)
        print(f"facelens-convert: {exc}", file=sys.stderr)
        return 2
    print(summary(report))
    if not report["passed"]:
        print(f"facelens-convert: top-1 agreement {report['chosen']['top1_agreement']:.1%} is "
              f"below --threshold {args.threshold:.0%}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
