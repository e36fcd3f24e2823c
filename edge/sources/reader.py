"""Keeps frames coming: reopens a failed or stalled source, and hands over the newest frame.

A live camera produces frames whether or not we keep up; queueing them would make every event
later than the last. So for live sources a thread reads continuously, keeps only the newest
frame and counts the ones nobody took. Files are read in order, every frame, on the caller's
thread, so their results do not depend on the machine's speed.

A camera that goes away is retried on `edge.retry`'s schedule (a low cap, so it is read again
within seconds of its return); one that keeps its connection but sends nothing for `stall_s`
fails its read (the source's read timeout) and is reopened at once. Either way only this
thread waits: the processing loop and the watchdog never do.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace

from facelens.edge.retry import RetrySchedule
from facelens.edge.sources.base import EndOfStream, Frame, Source, SourceError

log = logging.getLogger(__name__)
#: On shutdown, wait this long for the reading thread (a camera driver can hang in a read).
CLOSE_TIMEOUT_S = 1.0


@dataclass
class ReaderStats:
    frames_read: int = 0
    frames_dropped: int = 0
    reconnects: int = 0
    stalls: int = 0


class FrameReader:
    def __init__(self, source: Source, *, latest_only: bool | None = None, loop: bool = False,
                 reconnect_min_s: float = 0.5, reconnect_max_s: float = 4.0,
                 stall_s: float = 5.0, stop: threading.Event | None = None) -> None:
        self.source = source
        self.latest_only = source.live if latest_only is None else latest_only
        self.loop = loop
        self.stats = ReaderStats()
        self.stop = stop or threading.Event()
        self._retry = RetrySchedule(reconnect_min_s, reconnect_max_s)
        self.stall_s = stall_s
        self._last_at = time.monotonic()  # when the last frame (or the open) happened
        self._open = False
        self._ended = False
        self._t_offset = 0.0
        self._last: Frame | None = None
        self._slot: Frame | None = None
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Open the source. A file or folder that cannot be opened is an error at once; a
        camera or stream is retried in the background, since it may come back."""
        try:
            self.source.open()
            self._open = True
            self._last_at = time.monotonic()
        except SourceError as exc:
            if not self.source.live:
                raise
            log.error("%s; retrying", exc)
            self.stats.reconnects += 1
            self._retry.next_delay()  # counts as the first failed attempt
        if self.latest_only:
            self._thread = threading.Thread(target=self._run, name="frame-reader", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self.stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=CLOSE_TIMEOUT_S)
            if self._thread.is_alive():  # stuck in the camera's driver: exit without it
                log.warning("source %s did not stop within %g s; leaving it to the exit",
                            self.source.name, CLOSE_TIMEOUT_S)
                return
        self.source.close()
        self._open = False

    # -- reading ---------------------------------------------------------------------------
    def get(self, timeout: float = 1.0) -> Frame | None:
        """The next frame to process; None on timeout, or for good once the stream ended."""
        if not self.latest_only:
            return self._next()
        with self._cond:
            if self._slot is None and not self._ended:
                self._cond.wait(timeout)
            frame, self._slot = self._slot, None
            return frame

    @property
    def ended(self) -> bool:
        return self._ended

    def seconds_since_frame(self) -> float:
        """Since the last frame, or since the source was opened if none came yet."""
        return round(time.monotonic() - self._last_at, 2)

    def status(self) -> str:
        """What the live page and stats say of the camera: streaming, stalled (no frame for
        `stall_s`, a reopen on its way), reconnecting (closed, retrying) or ended."""
        if self._ended:
            return "ended"
        if not self._open:
            return "reconnecting"
        if self.source.live and time.monotonic() - self._last_at > self.stall_s:
            return "stalled"
        return "streaming"

    def _run(self) -> None:
        while not self.stop.is_set():
            frame = self._next()
            if frame is None:
                continue
            with self._cond:
                if self._slot is not None:
                    self.stats.frames_dropped += 1
                self._slot = frame
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _next(self) -> Frame | None:
        """Read one frame, reopening after failures; None when ended or stopping."""
        while not self.stop.is_set() and not self._ended:
            try:
                if not self._open:
                    self.source.open()
                    self._opened()
                frame = self.source.read()
            except EndOfStream:
                if not self.loop:
                    self._finish()
                    return None
                self._restart_file()
                continue
            except SourceError as exc:
                self._failed(exc)
                continue
            self._last_at = time.monotonic()
            self.stats.frames_read += 1
            frame = replace(frame, t=frame.t + self._t_offset) if self._t_offset else frame
            self._last = frame
            return frame
        return None

    def _opened(self) -> None:
        if self._retry.down_since is not None:
            log.info("source %s opened again after %.1f s (%d attempts)", self.source.name,
                     self._retry.down_for(), self._retry.attempts)
        else:  # a looping file reopens at every lap: say so only once
            log.log(logging.DEBUG if self._t_offset else logging.INFO, "source %s opened",
                    self.source.name)
        self._retry.reset()
        self._open = True
        self._last_at = time.monotonic()

    def _finish(self) -> None:
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def _restart_file(self) -> None:
        if self._last is not None:
            self._t_offset = self._last.t + 0.04  # keep the clock going forward across loops
        self.source.close()
        self._open = False

    def _failed(self, exc: SourceError) -> None:
        self.source.close()
        self._open = False
        if not self.source.live:
            # A file does not heal by waiting: unreadable at the start is an error, broken
            # later ends the stream with what was read.
            if self.stats.frames_read == 0:
                raise exc
            log.warning("%s; treating as the end of the stream", exc)
            self._finish()
            return
        silent = time.monotonic() - self._last_at
        if self._retry.down_since is None:
            self.stats.reconnects += 1  # lost once, however many attempts it takes
        if self._retry.down_since is None and silent >= self.stall_s * 0.9:
            # It was open and went quiet: a stall. Reopen at once; the schedule follows if
            # the reopen fails too.
            self.stats.stalls += 1
            log.warning("%s: no frame for %.1f s (stall_s %g); reopening", exc, silent,
                        self.stall_s)
            self._retry.next_delay()
            return
        if self._retry.down_since is None:
            log.warning("%s; reopening", exc)
        else:
            log.debug("source %s: attempt %d failed: %s", self.source.name,
                      self._retry.attempts, exc)
        if self._retry.down_since is not None and self._retry.reminder_due():
            log.warning("source %s still unavailable after %.0f s (%d attempts): %s",
                        self.source.name, self._retry.down_for(), self._retry.attempts, exc)
        self._retry.wait(self.stop)
