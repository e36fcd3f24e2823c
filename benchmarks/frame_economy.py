"""Frame economy on a room camera's day: CPU per frame, model runs, visitors found.

    python benchmarks/frame_economy.py [--seconds 180] [--peer .cache/peer/bin/python]

Makes the room-camera video with the repo's scene generator (real photos: a still room with
sensor noise, slow light drift and one light switch; 15 visitors with 35-90 px faces; nobody
there 60 % of the time), then runs each configuration in a fresh process of its own (so peak
RSS is its own) and prints one table: CPU ms per frame (process CPU time over the frames,
start-up excluded, decoding included), model runs per frame (detector windows + head
classifications), visitors announced / present, the smallest face announced, time from a
visitor's first whole-face frame to its `new` event, peak RSS, and the limit: the inference
time of just the model runs each configuration needed. With --peer, the peer (fer 25.10.3,
`FER().detect_emotions`, in its own venv) on the same frames. Also the empty-room cost: CPU
per frame of an empty, noisy, drifting room beyond decoding it.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {
    "full scan every frame (3x2 tiles), 2 threads": {"motion": {"enabled": False},
                                                     "runtime": {"threads": 2}},
    "full scan every frame (3x2 tiles), 1 thread": {"motion": {"enabled": False}},
    "motion + regions, 2 threads": {"runtime": {"threads": 2}},
    "motion + regions, no following, 1 thread (before)": {"scan": {"follow_min_score": 0}},
    "motion + regions, no slow background (ghosts), 1 thread (before)": {
        "motion": {"long_alpha": 0}},
    "motion + regions, every tile at every full scan, 1 thread (before)": {
        "scan": {"idle_full_scan_interval_s": 10.0}},
    "motion + regions, 1 thread (default)": {},
    "motion + regions, short-range model in regions, 1 thread": {
        "detector": {"region_model": "blazeface_short_range"}},
    "motion + regions, liveness on, 1 thread": {"liveness": {"enabled": True}},
}


def measure(video: str, truth: str, overrides: dict, models: str) -> dict:
    """One configuration, in this process: the pipeline exactly as the service runs it."""
    import numpy as np

    from facelens.edge.camera.pipeline import Pipeline
    from facelens.edge.config import load_config
    from facelens.edge.sources import FrameReader, open_source

    sections = {k: dict(v) for k, v in overrides.items()}
    sections.setdefault("runtime", {}).update({"models_dir": models, "edgetpu": "off"})
    pipeline = Pipeline(load_config(None, environ={}, overrides=sections))
    inference = [0.0]
    detectors = [pipeline.detector, getattr(pipeline.detector, "regions", None)]
    models_run = [d.model for d in detectors if d is not None]
    models_run += [a.classifier.model for a in pipeline.analysers
                   if getattr(a, "classifier", None) is not None]
    for m in models_run:  # the limit: time inside the interpreter only
        run = m.run

        def timed(x, run=run, m=m):
            out = run(x)
            inference[0] += m.last_latency_ms
            return out
        m.run = timed
    visitors = json.loads(Path(truth).read_text())
    occupied = {int(k) for v in visitors for k in v["boxes"]}
    # Frames within 3 s after someone was last there (tracks of people who just left).
    after = {i + d for i in occupied for d in range(1, 31)} - occupied
    runs = {"occupied": [0, 0], "empty": [0, 0], "after": [0, 0]}  # detector runs, frames
    reader = FrameReader(open_source(video))
    reader.start()
    news: list[tuple[int, tuple]] = []
    frames = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    while (frame := reader.get()) is not None:
        for e in pipeline.process(frame):
            if e.type == "new":
                news.append((frame.index, e.box))
        for key in ("occupied" if frame.index in occupied else "empty",
                    *(["after"] if frame.index in after else [])):
            runs[key][0] += pipeline.last_detector_runs
            runs[key][1] += 1
        frames += 1
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    eco = pipeline.economy
    found, delays, sizes = 0, [], []
    for v in visitors:
        boxes = {int(k): b for k, b in v["boxes"].items()}
        first, last = min(boxes), max(boxes)

        def near(i: int, box, boxes=boxes, first=first, last=last) -> bool:
            """A `new` while the visitor is there, centred within a face size of them."""
            if not first - 10 <= i <= last:
                return False
            b = boxes.get(i) or boxes[min(boxes, key=lambda f: abs(f - i))]
            return (abs((box[0] + box[2]) - (b[0] + b[2])) / 2 < (b[2] - b[0])
                    and abs((box[1] + box[3]) - (b[1] + b[3])) / 2 < (b[3] - b[1]))
        hit = [i for i, box in news if near(i, box)]
        if hit:
            found += 1
            delays.append((min(hit) - first) / 10)
            sizes.append(v["face_px"])
    return {"frames": frames, "cpu_ms_per_frame": round(cpu / frames * 1000, 2),
            "wall_ms_per_frame": round(wall / frames * 1000, 2),
            "model_runs_per_frame": round((eco.detector_runs + eco.head_runs) / frames, 2),
            "detector_runs_per_frame": round(eco.detector_runs / frames, 2),
            "detector_runs": {k: round(r / max(n, 1), 2) for k, (r, n) in runs.items()},
            "inference_ms_per_frame": round(inference[0] / frames, 2),
            "visitors": f"{found}/{len(visitors)}", "tracks": len(news),
            "smallest_face_px": min(sizes) if sizes else None,
            "new_after_s": {"mean": round(float(np.mean(delays)), 2) if delays else None,
                            "max": round(float(np.max(delays)), 2) if delays else None},
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def decode_only(video: str) -> float:
    import cv2

    cap = cv2.VideoCapture(video)
    n, cpu0 = 0, time.process_time()
    while cap.read()[0]:
        n += 1
    return (time.process_time() - cpu0) / n * 1000


PEER = r"""
import json, resource, sys, time
import cv2
from fer.fer import FER  # fer 25.10.3 exports it from there
det = FER()
cap = cv2.VideoCapture(sys.argv[1])
ok, frame = cap.read()
det.detect_emotions(frame)  # warm-up: start-up excluded
n, faces, cpu0 = 0, 0, time.process_time()
while True:
    ok, frame = cap.read()
    if not ok:
        break
    faces += len(det.detect_emotions(frame))
    n += 1
cpu = (time.process_time() - cpu0) / n * 1000
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"frames": n, "cpu_ms_per_frame": round(cpu, 2),
                  "faces_per_frame": round(faces / n, 3), "peak_rss_mb": round(rss, 1)}))
"""


def child(models: str, video: Path, truth: Path, overrides: dict) -> dict:
    """One configuration measured in a fresh process (its own peak RSS)."""
    out = subprocess.run([sys.executable, __file__, "--models", models, "--one",
                          json.dumps([str(video), str(truth), overrides])],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    print(overrides, row, file=sys.stderr)
    return row


def report(label: str, video, truth: Path, args) -> None:
    """Every configuration (and the peer) on one video, as one table."""
    print(f"video {label}: {video.total_frames} frames, {len(video.visitors)} visitors "
          f"({min(v.face_px for v in video.visitors)}-{max(v.face_px for v in video.visitors)}"
          f" px faces), empty {video.empty_fraction:.0%} of the frames", file=sys.stderr)
    rows = {name: child(args.models, video.path, truth, overrides)
            for name, overrides in CONFIGS.items()
            if not args.only or any(part in name for part in args.only.split(","))}
    decode = decode_only(str(video.path))
    peer = None
    if args.peer:
        script = Path(truth).with_name("peer.py")
        script.write_text(PEER)
        out = subprocess.run([args.peer, str(script), str(video.path)], capture_output=True,
                             text=True, check=True)
        peer = json.loads(out.stdout.strip().splitlines()[-1])
        print("peer", peer, file=sys.stderr)
    print(f"\n**{label}**: {video.total_frames} frames 640x480 at 10 fps, "
          f"{len(video.visitors)} visits, empty {video.empty_fraction:.0%}; decoding alone "
          f"{decode:.2f} ms CPU per frame\n")
    print("| configuration | CPU ms/frame | vs peer | detector runs per occupied / empty / "
          "just-left frame | model runs/frame | inference ms/frame (the limit) | visitors | "
          "extra tracks | smallest face | new after (mean/max s) | peak RSS MB |")
    print("|---|---:|---:|---|---:|---:|---|---:|---:|---|---:|")
    for name, r in rows.items():
        ratio = f"{peer['cpu_ms_per_frame'] / r['cpu_ms_per_frame']:.1f}x less" if peer else "—"
        found = int(r["visitors"].split("/")[0])
        d = r["detector_runs"]
        print(f"| {name} | {r['cpu_ms_per_frame']} | {ratio} | {d['occupied']} / {d['empty']}"
              f" / {d['after']} | {r['model_runs_per_frame']} | "
              f"{r['inference_ms_per_frame']} | {r['visitors']} | {r['tracks'] - found} | "
              f"{r['smallest_face_px']} px | {r['new_after_s']['mean']}/{r['new_after_s']['max']}"
              f" | {r['peak_rss_mb']} |")
    if peer:
        print(f"| peer: fer 25.10.3 FER().detect_emotions | {peer['cpu_ms_per_frame']} | 1x | — |"
              f" — | — | {peer['faces_per_frame']} faces/frame | — | — | — | — | "
              f"{peer['peak_rss_mb']} |")


def profile(video: Path, truth: Path, models: str) -> None:
    """Where the default configuration's CPU goes on this video: cProfile's top functions."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    row = measure(str(video), str(truth), {}, models)
    prof.disable()
    print(f"\n{video.name}: {row['cpu_ms_per_frame']} ms CPU per frame (under the profiler)")
    pstats.Stats(prof).sort_stats("tottime").print_stats(14)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=180)
    ap.add_argument("--models", default=str(ROOT / ".cache/models"))
    ap.add_argument("--peer", help="python of a venv with fer==25.10.3 installed")
    ap.add_argument("--only", help="run only the configurations whose name contains this "
                    "(or one of these, comma-separated)")
    ap.add_argument("--video", default="both",
                    help="room, lively or both (default): which room video(s)")
    ap.add_argument("--profile", action="store_true",
                    help="profile the default configuration instead (cProfile, top functions)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:  # a child: one configuration
        video, truth, overrides = json.loads(args.one)
        print(json.dumps(measure(video, truth, overrides, args.models)))
        return 0
    from demo.scenes import lively_room_video, room_camera_video, write_video

    work = Path(tempfile.mkdtemp(prefix="facelens-economy-"))
    videos = {"room": lambda p: room_camera_video(p, seconds=args.seconds),
              "lively": lambda p: lively_room_video(p)}
    for label in (args.video.split(",") if args.video != "both" else list(videos)):
        video = videos[label](work / f"{label}.avi")
        truth = work / f"{label}.json"
        truth.write_text(json.dumps([{"name": v.name, "face_px": v.face_px, "boxes": v.boxes}
                                     for v in video.visitors]))
        if args.profile:
            profile(video.path, truth, args.models)
            continue
        report(label, video, truth, args)
    if args.profile:
        return 0
    # The empty room: noise, drift, nobody; CPU beyond decoding.
    import numpy as np

    from demo.scenes import background

    rng = np.random.default_rng(5)
    room = background().astype(np.float32)
    frames = [np.clip(room * (1 + 0.05 * np.sin(i / 30)) + rng.normal(0, 2.5, room.shape),
                      0, 255).astype(np.uint8) for i in range(300)]
    empty = write_video(work / "empty.avi", frames)
    empty_truth = work / "empty.json"
    empty_truth.write_text("[]")
    e = child(args.models, empty, empty_truth, {})
    empty_decode = decode_only(str(empty))

    print(f"\nempty room (noise + drift, 300 frames): {e['cpu_ms_per_frame']} ms CPU per frame, "
          f"decoding {empty_decode:.2f} ms: {e['cpu_ms_per_frame'] - empty_decode:.2f} ms beyond "
          f"decoding; {e['detector_runs_per_frame']} detector runs per frame; "
          f"{e['tracks']} tracks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
