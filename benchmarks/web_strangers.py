"""The processing loop's frame rate with the live page on, idle and then under 200 slow
unauthenticated connections from one address (each sends a byte a second and never finishes
its headers, and is opened again when the server drops it).

    PYTHONPATH=. .venv/bin/python benchmarks/web_strangers.py [--clients 200] [--seconds 20]

`facelens run` plays the looping astronaut clip, every frame processed (a file: as fast as the
CPU allows), the live page on loopback. The loop's frame rate is read from the daemon's own
stats (`cameras.camera.process_fps`, over each 2 s window). Every connection goes to
127.0.0.1 only, is bounded in count and time, and the script stops by itself. Prints the two
rates, their ratio (target: within 10 %), and how many connections the server turned away.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stats(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/stats", timeout=10) as r:
        return json.loads(r.read())


#: The strangers' address: another loopback address, one machine (the owner reads stats from
#: 127.0.0.1).
STRANGER = "127.0.0.2"
REFUSED = [0, 0]  # the owner's own stats requests: refused, asked


def loop_fps(port: int, seconds: float) -> list[float]:
    """One reading per stats window (2 s) for `seconds`; the owner's requests that the
    server turned away (its pending slots full of strangers) are counted and retried."""
    rates, seen, end = [], None, time.monotonic() + seconds
    while time.monotonic() < end:
        REFUSED[1] += 1
        try:
            service = stats(port)["service"]
        except OSError:
            REFUSED[0] += 1
            time.sleep(0.1)
            continue
        if service and service["time"] != seen:
            seen = service["time"]
            rates.append(service["cameras"]["camera"]["process_fps"])
        time.sleep(0.5)
    return rates[1:]  # the first window may straddle the change


def strangers(port: int, n: int, stop: threading.Event) -> None:
    """`n` connections that send a byte a second and never finish their headers; one the
    server drops is opened again (a stubborn attacker), at most once a second per slot."""
    socks: list[socket.socket | None] = [None] * n
    while not stop.wait(1.0):
        for i, s in enumerate(socks):
            try:
                if s is None:
                    s = socket.create_connection(("127.0.0.1", port), timeout=1,
                                                 source_address=(STRANGER, 0))
                    s.setblocking(False)
                    s.send(b"GET / HTTP/1.1\r\n")
                    socks[i] = s
                else:
                    s.send(b"X")
            except OSError:
                if s is not None:
                    s.close()
                socks[i] = None
    for s in socks:
        if s is not None:
            s.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from demo.scenes import astronaut_video

    with tempfile.TemporaryDirectory() as tmp:
        clip = astronaut_video(Path(tmp) / "clip.avi").path
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "FACELENS_SOURCE_LOOP": "true",
               "FACELENS_OUTPUT_STDOUT": "false", "FACELENS_WEB_ENABLED": "true",
               "FACELENS_WEB_LISTEN": f"127.0.0.1:{port}", "FACELENS_MQTT_STATS_INTERVAL_S": "2",
               "FACELENS_RUNTIME_MODELS_DIR": str(ROOT / ".cache" / "models"),
               "FACELENS_RUNTIME_EDGETPU": "off"}
        daemon = subprocess.Popen([sys.executable, "-m", "facelens.edge.cli", "run", "--source",
                                   str(clip)], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if stats(port)["service"]:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("the daemon did not come up")
                time.sleep(0.5)
            idle = loop_fps(port, args.seconds)
            REFUSED[:] = [0, 0]
            stop = threading.Event()
            trickle = threading.Thread(target=strangers, args=(port, args.clients, stop))
            trickle.start()
            busy = loop_fps(port, args.seconds)
            stop.set()
            trickle.join()
            time.sleep(args.seconds / 2)  # the page's deadline lets go of the last ones
            rejected = stats(port)["service"]["web_rejected"]
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
    a, b = statistics.mean(idle), statistics.mean(busy)
    print(f"loop fps idle: {a:.1f} (n={len(idle)} windows); with {args.clients} slow "
          f"unauthenticated connections: {b:.1f} (n={len(busy)}); ratio {b / a:.3f}; "
          f"connections turned away: {rejected}; the owner's stats requests refused meanwhile:"
          f" {REFUSED[0]} of {REFUSED[1]}")


if __name__ == "__main__":
    main()
