"""Liveness on renders from real photos: live heads called spoof, spoofs caught, undetermined,
time to a verdict, and the CPU it costs.

    PYTHONPATH=. .venv/bin/python benchmarks/liveness.py [--faces tune|held-out|all]

Faces: @vladmandic/face-api 1.7.15's six demo group photos (npm, faces of at least 100 px)
and face_recognition 1.3.0's test images (PyPI sdist). The thresholds were set looking at the
faces of sample photos 1-3 only (`--faces tune`); `held-out` (photos 4-6, Obama, Biden) is
what the README reports. Each face is rendered (demo/liveness_scenes.py) as a live head
turning ±8° and ±14° (with and without a blink), as a print (white border, or bare: cut to
the picture's edge) and as a phone turning ±8° and ±14°, and as a still print: 4 s at 10 fps
through the real pipeline with liveness on.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def faces(which: str):
    from benchmarks.known_faces import face_api_photos
    from demo.liveness_scenes import face_3d
    from facelens.edge.config import load_config
    from facelens.edge.detect import DETECTORS
    from facelens.edge.runtime.interpreter import open_model
    from facelens.edge.runtime.landmarker import FaceLandmarker
    from tests.face_photos import photos, read

    cache = ROOT / ".cache"
    cfg = load_config(None, environ={}, overrides={
        "runtime": {"models_dir": str(cache / "models"), "edgetpu": "off"}})
    det = DETECTORS["blazeface"](cfg)
    lm = FaceLandmarker(open_model(cache / "models" / "face_landmark.json", edgetpu="off"))
    pool = []
    for i, image in enumerate(face_api_photos(cache / "wheels"), 1):
        part = "tune" if i <= 3 else "held-out"
        for k, f in enumerate(d for d in det.detect(image) if d.width >= 100):
            pool.append((part, f"s{i}_{k}", image, f.box))
    for n, p in photos(cache).items():
        im = read(p)
        pool.append(("held-out", n, im, max(det.detect(im), key=lambda d: d.width).box))
    out = []
    for part, name, image, box in pool:
        if which not in ("all", part):
            continue
        f3 = face_3d(name, image, box, lm)
        if f3 is not None:
            out.append(f3)
    return out, cfg


#: What a liveness sample costs, carried from one scene's pipeline to the next.
SAMPLE_MS = [0.0]


def run(face, kind: str, amplitude: float, blink: bool, base_cfg,
        liveness: dict | None = None) -> tuple[str, float, float]:
    """(verdict, seconds to it or nan, CPU ms per frame of liveness while assessing: the
    thread's CPU time spent on samples over the frames from the track's first to the sample
    that decided)."""
    from demo.liveness_scenes import scene
    from facelens.edge.camera.pipeline import Pipeline
    from facelens.edge.config import load_config
    from facelens.edge.sources.base import Frame

    cfg = load_config(None, environ={}, overrides={
        "runtime": {"models_dir": str(base_cfg.runtime.models_dir), "edgetpu": "off"},
        "liveness": {"enabled": True, **(liveness or {})}, "identity": {"model": ""},
        "emotion": {"model": ""},
        "tracker": {"lost_after_s": 5.0}})
    pipe = Pipeline(cfg)
    live = pipe.models.analyser("liveness")
    live.sample_ms = SAMPLE_MS[0]  # as in the service: the cost of earlier tracks' samples
    take = live.take
    tracks: dict[int, dict] = {}  # per track: CPU spent, first frame, deciding frame

    def timed(state, sample):  # the CPU this thread spends on each track's samples
        c0 = time.thread_time()
        take(state, sample)
        t = tracks.setdefault(id(state), {"ms": 0.0, "samples": 0, "decided": None})
        t["ms"] += (time.thread_time() - c0) * 1000
        t["samples"] += 1
        t["first"] = state.first_frame
        if state.decided is not None and t["decided"] is None:
            t["decided"] = sample.frame_no
    live.take = timed
    events = []
    for i, (t, image) in enumerate(scene(face, kind, amplitude=amplitude,
                                         blink_at=1.2 if blink else None)):
        events += pipe.process(Frame(image, i, t, 1.7e9 + t))
    last = i
    events += pipe.finish(4.0, 1.7e9 + 4.0)
    SAMPLE_MS[0] = live.sample_ms
    ends = [e for e in events if e.type == "end"]
    if not ends:
        return "no track", float("nan"), 0.0
    auth = ends[-1].authenticity
    verdict = auth.verdict if auth else "undetermined"
    after = auth.evidence.get("decided_after_s", float("nan")) if auth else float("nan")
    # CPU per frame while assessed, for the scene's face (the track sampled most; a photo
    # can show a neighbour's face too): from the frame it was first offered to liveness to
    # the sample that decided (or, if none did, to the scene's last frame).
    main = max(tracks.values(), key=lambda t: t["samples"], default=None)
    ms = 0.0 if main is None else main["ms"] / (
        (last if main["decided"] is None else main["decided"]) - main["first"] + 1)
    return verdict, after, ms


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--faces", default="held-out", choices=["tune", "held-out", "all"])
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a [liveness] key for this run (e.g. frame_samples=3); repeatable")
    args = ap.parse_args()
    overrides = {k: float(v) if "." in v else int(v)
                 for k, v in (item.split("=", 1) for item in args.set)}
    pool, cfg = faces(args.faces)
    print(f"{len(pool)} faces ({args.faces})")
    cases = [("live", 8, True), ("live", 14, True), ("live", 8, False), ("live", 14, False),
             ("print", 8, False), ("print", 14, False), ("bare", 8, False),
             ("bare", 14, False), ("phone", 8, False), ("phone", 14, False),
             ("still", 0, False)]
    rows: dict[tuple, list] = defaultdict(list)
    t0 = time.process_time()
    for face in pool:
        for kind, amp, blink in cases:
            rows[(kind, amp, blink)].append(run(face, kind, amp, blink, cfg, overrides))
    print(f"{'scene':<22} {'n':>3} {'live':>5} {'spoof':>6} {'undet.':>7} "
          f"{'median s to verdict':>20} {'CPU ms/frame assessed':>22}")
    for (kind, amp, blink), got in rows.items():
        verdicts = [g[0] for g in got]
        times = [g[1] for g in got if not np.isnan(g[1])]
        label = f"{kind} ±{amp}°{' blink' if blink else ''}"
        print(f"{label:<22} {len(got):>3} {verdicts.count('live'):>5} "
              f"{verdicts.count('spoof'):>6} {verdicts.count('undetermined'):>7} "
              f"{(np.median(times) if times else float('nan')):>20.2f} "
              f"{np.mean([g[2] for g in got]):>22.2f}")
    print(f"(CPU {time.process_time() - t0:.0f} s in all)")


if __name__ == "__main__":
    main()
