"""The live view's state: the newest annotated frame, recent events, live stats.

It is a publisher like MQTT or stdout, fed by the daemon; the HTTP server (server.py) reads
from it on threads of its own. The processing loop only ever stores a reference and wakes
the viewers: it never encodes, never waits on a socket. Frames are kept only while someone
watches (`wants_frames`), JPEGs are encoded by the viewers' threads, at most `web.max_fps`,
once per frame and overlay set however many watch; a viewer that stalls misses frames.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import asdict

from facelens.edge.events import (
    CameraHealth,
    CameraState,
    FaceEvent,
    FrameView,
    OutputHealth,
    ServiceStats,
)
from facelens.edge.publish.base import Publisher
from facelens.edge.publish.web.annotate import annotate, to_jpeg

#: Events kept for a page that opens now, and per connected event stream.
RECENT_EVENTS = 50


class LiveView(Publisher):
    def __init__(self, max_fps: float) -> None:
        self.max_fps = max_fps
        self._cond = threading.Condition()
        self._view: FrameView | None = None
        self._seq = 0
        self._viewers = 0
        self._jpegs: dict[tuple[int, tuple[str, ...]], bytes] = {}
        self.encoded = 0  # JPEGs encoded since start: zero while nobody watches
        self._events: collections.deque[tuple[int, str]] = collections.deque(
            maxlen=RECENT_EVENTS)
        self._event_seq = 0
        self._frame_times: collections.deque[float] = collections.deque(maxlen=50)
        self._runs: collections.deque[int] = collections.deque(maxlen=50)
        self._stats: ServiceStats | None = None
        self._state: CameraState | None = None
        self._cameras: dict[str, CameraHealth] = {}
        #: Set by the builder: starts and stops the HTTP server; and the port it listens on.
        self.on_start: Callable[[], None] | None = None
        self.on_close: Callable[[], None] | None = None
        #: Set by the builder: connections the server turned away so far.
        self.rejected: Callable[[], int] = lambda: 0
        self.port = 0

    # -- the publisher side (the processing loop) ------------------------------------------
    def start(self) -> None:
        if self.on_start is not None:
            self.on_start()

    @property
    def wants_frames(self) -> bool:
        return self._viewers > 0

    def publish_frame(self, view: FrameView) -> None:
        with self._cond:
            self._view, self._seq = view, self._seq + 1
            self._jpegs.clear()
            self._frame_times.append(time.monotonic())
            self._runs.append(view.model_runs)
            self._cond.notify_all()

    def publish(self, event: FaceEvent) -> None:
        with self._cond:
            self._event_seq += 1
            self._events.append((self._event_seq, event.to_json()))
            self._cond.notify_all()

    def publish_state(self, state: CameraState) -> None:
        self._state = state

    def publish_stats(self, stats: ServiceStats) -> None:
        self._stats = stats

    def health(self) -> OutputHealth:
        return {"web_rejected": self.rejected()}

    def publish_camera(self, camera: str, health: CameraHealth) -> None:
        self._cameras = {**self._cameras, camera: health}

    def close(self) -> None:
        with self._cond:
            self._view = None
            self._cond.notify_all()
        if self.on_close is not None:
            self.on_close()

    # -- the viewer side (server threads) --------------------------------------------------
    def watch(self) -> None:
        with self._cond:
            self._viewers += 1

    def unwatch(self) -> None:
        with self._cond:
            self._viewers = max(0, self._viewers - 1)
            if not self._viewers:
                self._view, self._jpegs = None, {}  # no frame kept for nobody

    def next_jpeg(self, after: int, overlays: tuple[str, ...],
                  timeout: float = 1.0) -> tuple[int, bytes | None]:
        """The first frame newer than `after` (waiting up to `timeout`), annotated and
        encoded once for everyone asking for the same overlays."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > after and self._view is not None,
                                timeout)
            if self._view is None or self._seq <= after:
                return after, None
            seq, view = self._seq, self._view
            cached = self._jpegs.get((seq, overlays))
        if cached is not None:
            return seq, cached
        jpeg = to_jpeg(annotate(view, overlays))
        with self._cond:
            self.encoded += 1
            if self._seq == seq:
                self._jpegs[(seq, overlays)] = jpeg
        return seq, jpeg

    def events_after(self, after: int, timeout: float) -> list[tuple[int, str]]:
        """Events newer than `after`, waiting up to `timeout` for one."""
        with self._cond:
            self._cond.wait_for(lambda: self._event_seq > after, timeout)
            return [(n, e) for n, e in self._events if n > after]

    def stats(self) -> dict:
        """Live figures for the page, and the last health report."""
        with self._cond:
            times = list(self._frame_times)
            runs = list(self._runs)
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and \
            times[-1] > times[0] else 0.0
        live = {"fps": round(fps, 1), "viewers": self._viewers, "encoded_frames": self.encoded,
                "model_runs_per_frame": round(sum(runs) / len(runs), 2) if runs else None}
        return {"live": live,
                "state": asdict(self._state) if self._state else None,
                "cameras": {name: asdict(h) for name, h in self._cameras.items()},
                "service": asdict(self._stats) if self._stats else None}
