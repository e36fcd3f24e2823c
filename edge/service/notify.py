"""The systemd notify protocol (READY, WATCHDOG, STOPPING, STATUS), over its Unix socket.

A few lines of the standard library do this; the sdnotify package is unmaintained since 2017.
Without NOTIFY_SOCKET (not run by systemd) every call is a no-op.

Every send is non-blocking. A Unix datagram socket queues only `net.unix.max_dgram_qlen`
messages (10 on many kernels); a reader that is slow or gone would otherwise block the
processing loop in `sendto`, and a blocked loop cannot even see SIGTERM. A dropped watchdog
ping is harmless (the next one follows a third of the timeout later); a stalled loop is not.
"""

from __future__ import annotations

import os
import socket
import time


class SystemdNotifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        addr = env.get("NOTIFY_SOCKET", "")
        self._addr = "\0" + addr[1:] if addr.startswith("@") else addr
        usec = env.get("WATCHDOG_USEC", "")
        # Ping at a third of the timeout, as sd_watchdog_enabled(3) suggests at most half.
        self.watchdog_interval = int(usec) / 3e6 if usec.isdigit() and int(usec) > 0 else None
        self._last_ping = 0.0
        #: Messages the socket would not take at once (full queue, reader gone).
        self.dropped = 0

    @property
    def enabled(self) -> bool:
        return bool(self._addr)

    def send(self, *fields: str) -> bool:
        """Send one datagram without waiting; False if it could not be sent right now."""
        if not self._addr:
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            try:
                sock.sendto("\n".join(fields).encode(), self._addr)
            except OSError:  # queue full (EAGAIN), or systemd is gone (shutdown)
                self.dropped += 1
                return False
        return True

    def ready(self, status: str = "") -> None:
        self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> None:
        """Call from the processing loop: a hung loop stops pinging and systemd restarts us."""
        now = time.monotonic()
        if self.watchdog_interval is not None and now - self._last_ping >= self.watchdog_interval:
            self._last_ping = now
            self.send("WATCHDOG=1")

    def stopping(self) -> None:
        self.send("STOPPING=1")
