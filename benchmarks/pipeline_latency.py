"""Per-stage latency of the pipeline at 640×480 on this machine: detector, each classifier,
whole frame; mean, median and 95th percentile over a real-photo video with four faces.

    python benchmarks/pipeline_latency.py [--models DIR] [--tiles 3x2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from demo.scenes import room_video
from facelens.edge.camera.pipeline import Pipeline
from facelens.edge.config import load_config
from facelens.edge.sources import FrameReader, open_source


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=".cache/models")
    ap.add_argument("--tiles", default="3x2")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    tiles = [int(v) for v in args.tiles.split("x")]
    cfg = load_config(None, environ={}, overrides={
        "runtime": {"models_dir": args.models, "edgetpu": "off", "threads": args.threads},
        "detector": {"tiles": tiles}})
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "room.avi"
        room_video(video, n_frames=60)
        pipeline = Pipeline(cfg)
        reader = FrameReader(open_source(str(video)))
        reader.start()
        rows: list[dict[str, float]] = []
        faces = []
        while (frame := reader.get()) is not None:
            pipeline.process(frame)
            rows.append(pipeline.times.last)
            faces.append(len(pipeline.last_faces))
        reader.close()
    busy = [r for r, n in zip(rows, faces, strict=True) if n]
    print(f"{len(rows)} frames at 640x480, {len(busy)} with faces "
          f"(mean {np.mean([n for n in faces if n]):.1f} faces); tiles {args.tiles}, "
          f"{args.threads} threads; {pipeline.describe()['detector']}\n")
    print(f"{'stage':22} {'mean ms':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for stage in ("detector", "emotion", "authenticity", "frame"):
        v = np.array([r[stage] for r in busy])
        print(f"{stage:22} {v.mean():8.2f} {np.median(v):8.2f} {np.percentile(v, 95):8.2f}")
    per_face = np.array([r["emotion"] / n for r, n in zip(rows, faces, strict=True) if n])
    print(f"{'emotion per face':22} {per_face.mean():8.2f} {np.median(per_face):8.2f} "
          f"{np.percentile(per_face, 95):8.2f}")


if __name__ == "__main__":
    main()
