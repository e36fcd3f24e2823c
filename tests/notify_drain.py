"""A systemd notify socket for tests, drained on its own thread.

Reading it from the test's own thread only now and then is what once hung the suite: the
socket queues 10 datagrams, and a test busy elsewhere left the daemon's pings piling up.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path


class NotifyDrain:
    """A notify socket drained on its own thread, so the test never makes the daemon wait."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                self.messages += self.sock.recv(4096).decode().split("\n")

    def pings(self) -> int:
        return self.messages.count("WATCHDOG=1")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):  # what came after the last read
            while True:
                self.messages += self.sock.recv(4096).decode().split("\n")
        self.sock.close()
