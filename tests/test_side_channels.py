"""Nothing on a side channel stalls the processing loop, and SIGTERM always ends the daemon.

Each test jams one channel for real — a notify socket nobody reads, a stdout pipe nobody
reads, a broker that accepts the TCP connection and never answers — and checks two things:
the loop keeps running (its watchdog pings go on) and SIGTERM ends the process within
`STOP_BOUND_S`, the bound the README documents, with exit status 0.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import FACELENS
from tests.notify_drain import NotifyDrain

#: SIGTERM to exit, at most, with every side channel stuck (README: "Stopping").
STOP_BOUND_S = 10.0
pytestmark = pytest.mark.timeout(120)


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def loop_env(cli_env: dict, notify: Path, **extra: str) -> dict:
    env = {**cli_env, "NOTIFY_SOCKET": str(notify), "WATCHDOG_USEC": "300000",
           "FACELENS_SOURCE_LOOP": "true", "FACELENS_SOURCE_LATEST_ONLY": "true",
           # the whole frame only: these tests are about the loop, not the detector's recall
           "FACELENS_DETECTOR_TILES": "1x1"}
    env.update(extra)
    return env


def stop_within_bound(proc: subprocess.Popen) -> float:
    """SIGTERM, and the seconds until the process was gone (fails past the bound)."""
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_BOUND_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"SIGTERM did not end the daemon within {STOP_BOUND_S} s") from None
    return time.monotonic() - start


def test_notify_socket_nobody_reads_never_blocks_the_loop(astronaut_clip, cli_env, tmp_path):
    # The datagram queue holds 10 messages; pings every 0.1 s fill it in a second.
    jammed = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    jammed.bind(str(tmp_path / "notify.sock"))
    env = loop_env(cli_env, tmp_path / "notify.sock", WATCHDOG_USEC="30000")
    err = (tmp_path / "err.txt").open("w")
    proc = subprocess.Popen([*FACELENS, "run", "--source", str(astronaut_clip.path)],
                            stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    try:
        # Events keep coming long after the socket filled: the loop was never stuck.
        lines = [proc.stdout.readline() for _ in range(5)]
        assert [json.loads(x)["type"] for x in lines[:1]] == ["new"]
        took = stop_within_bound(proc)
    finally:
        proc.kill()
        err.close()
    assert proc.returncode == 0, (tmp_path / "err.txt").read_text()[-2000:]
    print(f"stopped {took:.2f} s after SIGTERM")
    jammed.setblocking(False)
    first = jammed.recv(4096).decode().split("\n")
    jammed.close()
    assert first[0] == "READY=1"


def test_stdout_pipe_nobody_reads_never_blocks_the_loop(astronaut_clip, cli_env, tmp_path):
    drain = NotifyDrain(tmp_path / "notify.sock")
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)  # the smallest pipe: full in seconds
    err = (tmp_path / "err.txt").open("w")
    proc = subprocess.Popen([*FACELENS, "run", "--source", str(astronaut_clip.path)],
                            stdout=write_end, stderr=err, env=loop_env(cli_env, drain.path))
    os.close(write_end)
    try:
        def pipe_full() -> bool:
            import termios
            n = bytearray(4)
            fcntl.ioctl(read_end, termios.FIONREAD, n)
            return int.from_bytes(n, "little") > 4096 - 1024  # no room for one more event

        wait_for(pipe_full, 60, "the stdout pipe to fill")
        pings = drain.pings()
        time.sleep(1.5)
        # The loop still runs (it pings every 0.1 s) although stdout cannot take a byte.
        assert drain.pings() >= pings + 5
        took = stop_within_bound(proc)
    finally:
        proc.kill()
        err.close()
        os.close(read_end)
        drain.close()
    assert proc.returncode == 0, (tmp_path / "err.txt").read_text()[-2000:]
    print(f"stopped {took:.2f} s after SIGTERM")
    assert drain.messages[-1] == "STOPPING=1"
    assert "standard output is not being read" in (tmp_path / "err.txt").read_text()


class SilentBroker:
    """Accepts TCP connections and never sends a byte, never reads one."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                self.conns.append(self.server.accept()[0])

    def close(self) -> None:
        for c in self.conns:
            c.close()
        self.server.close()


def test_broker_that_never_answers_never_blocks_the_loop(astronaut_clip, cli_env, tmp_path):
    drain = NotifyDrain(tmp_path / "notify.sock")
    broker = SilentBroker()
    outbox = tmp_path / "outbox.sqlite3"
    env = loop_env(cli_env, drain.path, FACELENS_MQTT_HOST="127.0.0.1",
                   FACELENS_MQTT_PORT=str(broker.port), FACELENS_MQTT_OUTBOX_PATH=str(outbox),
                   FACELENS_MQTT_RECONNECT_MIN_S="1", FACELENS_MQTT_RECONNECT_MAX_S="1",
                   FACELENS_MQTT_STATS_INTERVAL_S="0.5")
    err = (tmp_path / "err.txt").open("w")
    proc = subprocess.Popen([*FACELENS, "run", "--source", str(astronaut_clip.path)],
                            stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    try:
        lines = [json.loads(proc.stdout.readline()) for _ in range(3)]
        assert lines[0]["type"] == "new"
        wait_for(lambda: broker.conns, 30, "the daemon to connect")
        pings = drain.pings()
        time.sleep(1.5)
        assert drain.pings() >= pings + 5
        took = stop_within_bound(proc)
        rest = [json.loads(x) for x in proc.stdout.read().splitlines()]
    finally:
        proc.kill()
        err.close()
        drain.close()
        broker.close()
    assert proc.returncode == 0, (tmp_path / "err.txt").read_text()[-2000:]
    print(f"stopped {took:.2f} s after SIGTERM")
    # Nothing lost: every event printed waits in the outbox for the next start.
    with sqlite3.connect(outbox) as db:
        kept = {json.loads(p)["event_id"] for (p,) in db.execute("SELECT payload FROM outbox")}
    assert {e["event_id"] for e in lines + rest} <= kept
