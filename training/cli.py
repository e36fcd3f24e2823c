"""facelens-train: train the emotion or authenticity CNN and write what a person looks at.

    facelens-train emotion --data fer2013.csv|FOLDER --out DIR [--epochs 100] [--arch paper|edge]
    facelens-train authenticity --data FOLDER --out DIR [--self-blend] [--arch paper|edge]

Writes model.keras + model.json (its manifest, for facelens-convert), best.keras,
history.csv, curves.png, confusion.png, metrics.json and run.json. Running the same command
again after an interruption resumes from the last finished epoch.
Exit status: 0 trained, 2 bad input (data layout, model, option).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from facelens.edge.contract import ManifestError
from facelens.edge.errors import show_cause


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="facelens-train", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="task", required=True)
    for task in ("emotion", "authenticity"):
        p = sub.add_parser(task, help=f"train the {task} model")
        p.add_argument("--data", type=Path, required=True,
                       help="fer2013.csv or train/<class>/ + test/<class>/ folders"
                       if task == "emotion" else "real/ and fake/ folders (or only real "
                       "faces with --self-blend)")
        p.add_argument("--out", type=Path, required=True)
        # Authenticity defaults to the edge CNN: on a few hundred faces the paper's CNN (no
        # batch norm, heavy dropout) often never leaves chance (tests/test_training.py).
        p.add_argument("--arch", choices=["paper", "edge"],
                       default="paper" if task == "emotion" else "edge",
                       help="paper: the baseline CNN (emotion's default); edge: the Edge TPU "
                            "CNN with batch norm (authenticity's default)")
        p.add_argument("--epochs", type=int, default=100)
        p.add_argument("--batch-size", type=int, default=64)
        p.add_argument("--learning-rate", type=float, default=1e-3)
        p.add_argument("--patience", type=int, default=10, help="early stopping on val loss")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--size", type=int, default=48, help="input height and width")
        p.add_argument("--colour", choices=["gray", "rgb"], default="gray")
        p.add_argument("--range", default="0,1", help="float range of a pixel, e.g. 0,1 or -1,1")
        p.add_argument("--no-augment", action="store_true")
        p.add_argument("--no-class-weights", action="store_true")
        p.add_argument("--init", type=Path, help="transfer learning: start from this model")
        p.add_argument("--init-manifest", type=Path, help="its manifest, if not beside it")
        p.add_argument("--trainable-layers", type=int,
                       help="with --init: train only the last N layers")
        p.add_argument("--shots", type=int, help="few-shot: at most N training images a class")
        if task == "authenticity":
            p.add_argument("--self-blend", action="store_true",
                           help="make the fakes from real faces (Shiohara & Yamasaki 2022)")
            p.add_argument("--mask", choices=["landmarks", "ellipse"], default="landmarks",
                           help="self-blend mask: the face mesh's hull (default; needs "
                                "`facelens models fetch`) or an ellipse")
            p.add_argument("--models-dir", type=Path,
                           help="where the stock face_landmark model is (default: "
                                "facelens's models directory)")
    ap.add_argument("--debug", action="store_true",
                    help="on an error, also print its cause chain with tracebacks "
                         "(or set FACELENS_DEBUG=1)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from facelens.training.train import TrainOptions, train
    from facelens.workstation.datasets import DatasetError
    from facelens.workstation.kerasmodel import ModelLoadError

    try:
        lo, hi = (float(v) for v in args.range.split(","))
    except ValueError:
        print(f"facelens-train: --range {args.range!r}: expected two numbers like 0,1",
              file=sys.stderr)
        return 2
    opts = TrainOptions(task=args.task, arch=args.arch, epochs=args.epochs,
                        batch_size=args.batch_size, learning_rate=args.learning_rate,
                        patience=args.patience, seed=args.seed, size=args.size,
                        colour=args.colour, range=(lo, hi), augment=not args.no_augment,
                        class_weights=not args.no_class_weights,
                        self_blend=getattr(args, "self_blend", False),
                        mask=getattr(args, "mask", "landmarks"),
                        models_dir=getattr(args, "models_dir", None), init=args.init,
                        init_manifest=args.init_manifest,
                        trainable_layers=args.trainable_layers, shots=args.shots)
    try:
        metrics = train(args.data, args.out, opts)
    except (DatasetError, ModelLoadError, ManifestError, ValueError) as exc:
        show_cause(exc, args.debug)
        print(f"facelens-train: {exc}", file=sys.stderr)
        return 2
    final = metrics[metrics["evaluated_on"]]
    line = (f"{args.task}: {metrics['evaluated_on']} accuracy {final['accuracy']:.1%}, "
            f"macro F1 {final['macro']['f1']:.3f}")
    if "roc_auc" in final:
        line += f", ROC AUC {final['roc_auc']:.3f}"
    print(line + f"; {metrics['epochs_run']} epochs; model and report in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
