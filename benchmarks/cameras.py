"""Several cameras: one process serving N cameras against N single-camera processes.

    PYTHONPATH=. .venv/bin/python benchmarks/cameras.py [--seconds 60]

Each camera gets its own room-camera video (demo.scenes.room_camera_video, a different seed
each: a still room, visitors now and then). Measured in one run, each configuration in fresh
processes: peak RSS (one process; for N processes their sum) and CPU ms per frame per camera
(CPU time over frames processed). Start-up (loading models) is included in both, as a Pi
pays it once per process.
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
sys.path.insert(0, str(ROOT))


def serve(videos: list[str], models: str) -> dict:
    """In this process: one daemon over these videos as cameras; its own figures."""
    from facelens.edge.config import load_config
    from facelens.edge.service.daemon import Daemon

    cams = [{"name": f"cam{i}", "uri": v} for i, v in enumerate(videos)]
    cfg = load_config(None, environ={}, overrides={
        "runtime": {"models_dir": models, "edgetpu": "off"}, "cameras": cams,
        "output": {"stdout": False}})
    t0 = time.process_time()
    daemon = Daemon(cfg, publishers=[])
    daemon.run()
    cpu = time.process_time() - t0
    return {"frames": daemon.frames, "cpu_s": round(cpu, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def child(videos: list[str], models: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--models", models, "--one",
                          json.dumps(videos)], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--models", default=str(ROOT / ".cache/models"))
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(serve(json.loads(args.one), args.models)))
        return 0
    from demo.scenes import room_camera_video

    work = Path(tempfile.mkdtemp(prefix="facelens-cameras-"))
    videos = [str(room_camera_video(work / f"room{i}.avi", seconds=args.seconds, seed=i,
                                    visitors=max(1, int(args.seconds / 12))).path)
              for i in range(4)]
    print("| cameras | one process: peak RSS MB | CPU ms/frame/camera | N processes: RSS MB "
          "(sum) | CPU ms/frame/camera |")
    print("|---|---|---|---|---|")
    for n in (1, 2, 4):
        one = child(videos[:n], args.models)
        apart = [child([v], args.models) for v in videos[:n]]
        rss_apart = sum(a["peak_rss_mb"] for a in apart)
        cpu_apart = sum(a["cpu_s"] for a in apart) / sum(a["frames"] for a in apart) * 1000
        print(f"| {n} | {one['peak_rss_mb']} | {one['cpu_s'] / one['frames'] * 1000:.2f} | "
              f"{rss_apart:.1f} | {cpu_apart:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
