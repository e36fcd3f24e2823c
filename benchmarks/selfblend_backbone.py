"""Self-blend on a pretrained face backbone: a small head on the frozen face-embedding model's
features, against the CNN trained from scratch, judged on face swaps from held-out faces.

    PYTHONPATH=. .venv/bin/python benchmarks/selfblend_backbone.py [--models .cache/models]

The same faces, split, seeds, blends and swaps as `facelens-train authenticity --self-blend`
and benchmarks/selfblend_masks.py (the repo's 100 real faces at 96×96: the astronaut, the
cameraman, 98 LFW faces; 80/20 split, seed 0). Each face is aligned for MobileFaceNet from
its face-mesh landmarks (eye centres, nose tip, mouth centre), embedded (frozen), and a
logistic regression (scikit-learn) learns real vs self-blended from the training faces'
embeddings. Reported: ROC AUC on the self-blended validation set and on the face swaps, with
sample sizes; run selfblend_masks.py for the CNN's figures on the same sets.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def keypoints(points: np.ndarray) -> list[tuple[float, float]]:
    """BlazeFace's first four keypoints (right eye, left eye, nose tip, mouth) from the mesh."""
    def mid(a: int, b: int) -> tuple[float, float]:
        return (float(points[a][0] + points[b][0]) / 2, float(points[a][1] + points[b][1]) / 2)
    return [mid(33, 133), mid(263, 362), (float(points[1][0]), float(points[1][1])),
            mid(13, 14)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=str(ROOT / ".cache" / "models"))
    args = ap.parse_args()
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from demo.scenes import face_crops
    from facelens.edge.runtime.embedder import Embedder
    from facelens.edge.runtime.interpreter import open_model
    from facelens.training.selfblend import self_blended_set
    from facelens.training.splits import stratified_split
    from facelens.workstation.faceswap import swap_set
    from facelens.workstation.landmarks import open_landmarker

    models = Path(args.models)
    faces = [cv2.resize(f, (96, 96)) for f in face_crops(100)]
    landmarker = open_landmarker(models)
    assert landmarker is not None, "facelens models fetch first"
    embedder = Embedder(open_model(models / "mobilefacenet.json", edgetpu="off"))
    points = [landmarker.points(f) for f in faces]
    keep, held = stratified_split(np.zeros(len(faces)), 0.2, 0)
    sets = {}
    for name, idx in (("train", keep), ("val", held)):
        images, labels = self_blended_set([faces[i] for i in idx], 0 + len(name),
                                          [points[i] for i in idx])
        pts = [points[i] for i in idx for _ in (0, 1)]  # a blend keeps its face's geometry
        sets[name] = (images, labels, pts)
    images, labels = swap_set([faces[i] for i in held], [points[i] for i in held])
    usable = [points[i] for i in held if points[i] is not None]
    sets["face_swap"] = (images, labels, [p for p in usable for _ in (0, 1)])

    def features(images, pts):
        out, ok = [], []
        for k, (im, p) in enumerate(zip(images, pts, strict=True)):
            if p is None:
                continue
            out.append(embedder.embed(im, keypoints(p)))
            ok.append(k)
        return np.array(out), ok

    feats = {}
    for name, (images, labels, pts) in sets.items():
        x, ok = features(images, pts)
        feats[name] = (x, labels[ok])
    head = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced")
    head.fit(*feats["train"])
    print("| self-blend head | self-blended val: AUC (n) | face swaps: AUC (n) |")
    print("|---|---|---|")
    row = []
    for name in ("val", "face_swap"):
        x, y = feats[name]
        row.append(f"{roc_auc_score(y, head.predict_proba(x)[:, 1]):.3f} ({len(y)})")
    print(f"| logistic regression on frozen MobileFaceNet embeddings | {row[0]} | {row[1]} |")
    print(f"(trained on {len(feats['train'][1])} embeddings: "
          f"{int(feats['train'][1].sum())} self-blended)")


if __name__ == "__main__":
    main()
