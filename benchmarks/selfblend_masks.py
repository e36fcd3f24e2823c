"""Self-blend masks, ellipse vs landmarks (the face mesh's hull, as in the SBI paper), judged
on face swaps made another way from the held-out real faces.

    python benchmarks/selfblend_masks.py [--models .cache/models] [--epochs 20]

The real faces are the repo's real photos (the astronaut, the cameraman and 98 LFW faces, at
96×96); both variants train with the same split, seed and epochs. Few faces: read the AUCs
with their sample sizes.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2

from demo.scenes import face_crops
from facelens.training.train import TrainOptions, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=".cache/models")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--arch", default="edge")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--learning-rate", type=float, default=3e-3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="facelens-masks-"))
    faces = work / "faces"
    faces.mkdir()
    for i, face in enumerate(face_crops(100)):
        cv2.imwrite(str(faces / f"{i:03d}.png"), cv2.resize(face, (96, 96)))
    rows = {}
    for mask in ("ellipse", "landmarks"):
        m = train(faces, work / mask, TrainOptions(
            task="authenticity", self_blend=True, mask=mask, models_dir=Path(args.models),
            arch=args.arch, size=args.size, learning_rate=args.learning_rate,
            epochs=args.epochs, patience=args.epochs, batch_size=16, seed=0))
        rows[mask] = m
    print("\n| mask | self-blended val: AUC / accuracy (n) | face swaps: AUC / accuracy (n) |")
    print("|---|---|---|")
    for mask, m in rows.items():
        v, s = m["val"], m.get("face_swap")
        swap = (f"{s.get('roc_auc', float('nan')):.3f} / {s['accuracy']:.3f} ({s['samples']})"
                if s else "— (no landmarks)")
        print(f"| {mask} | {v.get('roc_auc', float('nan')):.3f} / {v['accuracy']:.3f} "
              f"({v['samples']}) | {swap} |")
    print(f"\nplots: {work}/*/roc.png")


if __name__ == "__main__":
    main()
