"""Which detector finds the faces a shelf camera sees? Recall, false positives and latency.

Scenes: real face photos (scikit-image's astronaut, cameraman and LFW faces) pasted at
25–80 px tall into a 640×480 room, several per frame, with known boxes. Prints one table;
run it after changing the detector or its defaults.

    python benchmarks/detector_strategies.py [--models DIR] [--scenes N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from demo import scenes
from facelens.edge.detect.base import iou
from facelens.edge.detect.blazeface import BlazeFaceDetector
from facelens.edge.detect.haar import HaarDetector
from facelens.edge.runtime.interpreter import open_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=".cache/models")
    ap.add_argument("--scenes", type=int, default=40)
    ap.add_argument("--faces", type=int, default=4)
    args = ap.parse_args()

    rng = np.random.default_rng(7)
    lfw = scenes.lfw_faces()
    frames = []
    for _ in range(args.scenes):
        # Two whole-head photos, tilted and mirrored at random, and two tight LFW crops.
        pick = [scenes.tilted(p, float(rng.uniform(-25, 25)), bool(rng.integers(2)))
                for p in (scenes.astronaut(), scenes.cameraman())]
        pick += [lfw[i] for i in rng.choice(len(lfw), args.faces - 2, replace=False)]
        sizes = [int(s) for s in rng.integers(25, 81, args.faces)]
        frames.append(scenes.room_scene(pick, sizes, rng))

    def blaze(name: str, tiles: tuple[int, int]) -> BlazeFaceDetector:
        return BlazeFaceDetector(open_model(f"{args.models}/{name}.json"), tiles=tiles)

    strategies = {
        "haar": HaarDetector(),
        "short-range, whole frame": blaze("blazeface_short_range", (1, 1)),
        "full-range, whole frame": blaze("blazeface_full_range", (1, 1)),
        "full-range, whole + 2x2 tiles": blaze("blazeface_full_range", (2, 2)),
        "full-range, whole + 3x2 tiles": blaze("blazeface_full_range", (3, 2)),
        "full-range, whole + 4x3 tiles": blaze("blazeface_full_range", (4, 3)),
        "short-range, whole + 3x3 tiles": blaze("blazeface_short_range", (3, 3)),
    }
    print(f"{args.scenes} scenes of {args.faces} faces, 25-80 px tall, 640x480\n")
    print("recall on whole-head photos (astronaut, cameraman; tilted up to 25 deg) by face "
          "height, on tight LFW crops, false positives and median latency\n")
    print(f"{'strategy':34} {'25-39':>6} {'40-59':>6} {'60-80':>6} {'LFW':>6} {'false+':>7} "
          f"{'ms/frame':>9}")
    for name, det in strategies.items():
        hits = np.zeros(4)
        counts = np.zeros(4)
        fp = 0
        times = []
        for frame, truth in frames:
            t0 = time.perf_counter()
            found = det.detect(frame)
            times.append((time.perf_counter() - t0) * 1000)
            matched = set()
            for k, box in enumerate(truth):
                ok = any(iou(box, f.box) > 0.3 for f in found)
                h = box[3] - box[1]
                bucket = 3 if k >= 2 else (0 if h < 40 else 1 if h < 60 else 2)
                counts[bucket] += 1
                hits[bucket] += ok
                matched |= {i for i, f in enumerate(found) if iou(box, f.box) > 0.3}
            fp += len(found) - len(matched)
        rec = hits / np.maximum(counts, 1)
        print(f"{name:34} {rec[0]:6.0%} {rec[1]:6.0%} {rec[2]:6.0%} {rec[3]:6.0%} {fp:7d} "
              f"{np.median(times):9.1f}")


if __name__ == "__main__":
    main()
