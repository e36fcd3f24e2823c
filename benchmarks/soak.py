"""Soak: `facelens run` on a looping real-face video, faster than real time, with MQTT on,
for N minutes; RSS, threads, open fds and outbox rows sampled every 10 s.

    python benchmarks/soak.py [--minutes 30] [--every 10] [--outage-at 10 --outage-s 60]
                              [--out benchmarks/soak.png]

The daemon runs as a subprocess with the default config (stock models, 3x2 tiles), events to
a private mosquitto on a free loopback port; the broker is stopped for `--outage-s` seconds at
minute `--outage-at` so the outbox fills and drains once. Prints the samples as a Markdown
table, the growth between `--warmup` minutes and the end, a verdict against the targets (RSS
growth < 5 MB, no thread or fd growth), and writes a PNG plot.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


@dataclass
class Sample:
    t_min: float
    rss_mb: float
    threads: int
    fds: int
    outbox: int
    broker_up: bool


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(port: int, workdir: Path) -> subprocess.Popen:
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nuser root\n")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("mosquitto did not start")


def read_sample(pid: int, outbox: Path, t0: float, broker_up: bool) -> Sample:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in status if ":" in line)
    rows = 0
    if outbox.exists():
        with sqlite3.connect(f"file:{outbox}?mode=ro", uri=True, timeout=5) as db:
            rows = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    return Sample(t_min=(time.monotonic() - t0) / 60,
                  rss_mb=int(fields["VmRSS"].split()[0]) / 1024,
                  threads=int(fields["Threads"]), fds=len(os.listdir(f"/proc/{pid}/fd")),
                  outbox=rows, broker_up=broker_up)


def plot(samples: list[Sample], out: Path, warmup: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s.t_min for s in samples]
    fig, axes = plt.subplots(4, 1, figsize=(8, 8), sharex=True)
    for ax, (label, values) in zip(axes, [
            ("RSS (MB)", [s.rss_mb for s in samples]), ("threads", [s.threads for s in samples]),
            ("open fds", [s.fds for s in samples]), ("outbox rows", [s.outbox for s in samples])],
            strict=True):
        ax.plot(t, values, marker=".")
        ax.set_ylabel(label)
        ax.axvline(warmup, color="grey", linestyle=":")
        for s0, s1 in itertools.pairwise(samples):
            if not s1.broker_up:
                ax.axvspan(s0.t_min, s1.t_min, color="orange", alpha=0.2, lw=0)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("minutes (shaded: broker down; dotted: end of warm-up)")
    fig.suptitle("facelens run: soak on a looping real-face video, MQTT on")
    fig.tight_layout()
    fig.savefig(out, dpi=90)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--every", type=float, default=10, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=5, help="minutes before growth counts")
    ap.add_argument("--outage-at", type=float, default=10, help="minute the broker stops")
    ap.add_argument("--outage-s", type=float, default=60, help="0: no outage")
    ap.add_argument("--models", default=str(ROOT / ".cache/models"))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/soak.png")
    args = ap.parse_args()

    from demo.scenes import astronaut_video

    work = Path(tempfile.mkdtemp(prefix="facelens-soak-"))
    clip = astronaut_video(work / "astronaut.avi")
    port = free_port()
    broker = start_broker(port, work)
    outbox = work / "outbox.sqlite3"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACELENS_")}
    env.update({"PYTHONPATH": str(ROOT), "FACELENS_RUNTIME_MODELS_DIR": args.models,
                "FACELENS_RUNTIME_EDGETPU": "off", "FACELENS_SOURCE_LOOP": "true",
                "FACELENS_SOURCE_LATEST_ONLY": "false",  # every frame: faster than real time
                "FACELENS_OUTPUT_STDOUT": "false", "FACELENS_MQTT_HOST": "127.0.0.1",
                "FACELENS_MQTT_PORT": str(port), "FACELENS_MQTT_OUTBOX_PATH": str(outbox),
                "FACELENS_MQTT_RECONNECT_MIN_S": "1", "FACELENS_MQTT_RECONNECT_MAX_S": "2",
                "FACELENS_MQTT_STATS_INTERVAL_S": "10"})
    log = (work / "daemon.log").open("w")
    daemon = subprocess.Popen([sys.executable, "-m", "facelens.edge.cli", "run", "--source",
                               str(clip.path)], env=env, stdout=subprocess.DEVNULL, stderr=log)
    t0 = time.monotonic()
    samples: list[Sample] = []
    outage = (args.outage_at * 60, args.outage_at * 60 + args.outage_s) if args.outage_s else None
    broker_up = True
    try:
        while (elapsed := time.monotonic() - t0) < args.minutes * 60:
            if daemon.poll() is not None:
                raise RuntimeError(f"the daemon exited ({daemon.returncode}); see {log.name}")
            if outage and broker_up and outage[0] <= elapsed < outage[1]:
                broker.terminate()
                broker.wait()
                broker_up = False
            elif outage and not broker_up and elapsed >= outage[1]:
                broker = start_broker(port, work)
                broker_up = True
            samples.append(read_sample(daemon.pid, outbox, t0, broker_up))
            s = samples[-1]
            print(f"{s.t_min:6.2f} min  RSS {s.rss_mb:6.1f} MB  threads {s.threads:3d}  "
                  f"fds {s.fds:3d}  outbox {s.outbox:5d}{'' if broker_up else '  (broker down)'}",
                  file=sys.stderr, flush=True)
            time.sleep(args.every - (time.monotonic() - t0) % args.every)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
        broker.terminate()
        log.close()
    frames = [line for line in (work / "daemon.log").read_text().splitlines()
              if "frames processed" in line]
    report(samples, args.warmup, frames[-1] if frames else "")
    plot(samples, args.out, args.warmup)
    print(f"\nplot: {args.out}")
    return 0


def report(samples: list[Sample], warmup: float, last_log: str) -> None:
    print("| minute | RSS MB | threads | open fds | outbox rows | broker |")
    print("|---:|---:|---:|---:|---:|---|")
    for s in samples:
        if round(s.t_min * 60) % 60 < 10 or s is samples[-1]:  # one row a minute
            print(f"| {s.t_min:.1f} | {s.rss_mb:.1f} | {s.threads} | {s.fds} | {s.outbox} | "
                  f"{'up' if s.broker_up else 'down'} |")
    after = [s for s in samples if s.t_min >= warmup and s.broker_up]
    if len(after) < 2:
        print("\nrun longer than the warm-up to judge growth")
        return
    # Growth: the last minute's mean against the first minute after warm-up (noise-robust).
    first = [s for s in after if s.t_min < after[0].t_min + 1]
    last = [s for s in after if s.t_min > after[-1].t_min - 1]
    def mean(xs, key):
        return sum(key(s) for s in xs) / len(xs)
    rss = mean(last, lambda s: s.rss_mb) - mean(first, lambda s: s.rss_mb)
    threads = max(s.threads for s in last) - max(s.threads for s in first)
    fds = max(s.fds for s in last) - max(s.fds for s in first)
    print(f"\nafter {warmup:g} min of warm-up: RSS {rss:+.1f} MB, threads {threads:+d}, "
          f"fds {fds:+d}; peak RSS {max(s.rss_mb for s in samples):.1f} MB")
    ok = rss < 5 and threads <= 0 and fds <= 0
    print(f"target (RSS growth < 5 MB, no thread or fd growth): {'met' if ok else 'MISSED'}")
    print(last_log)


if __name__ == "__main__":
    sys.exit(main())
