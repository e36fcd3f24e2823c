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
        #: Per camera, its newest frame (only while someone watches that camera), its
        #: frame counter and its viewers; cameras in the order they first sent a frame.
        self._views: dict[str, FrameView] = {}
        self._seqs: dict[str, int] = {}
        self._viewers: dict[str, int] = {}
        self._jpegs: dict[tuple[str, int, tuple[str, ...]], bytes] = {}
        self.encoded = 0  # JPEGs encoded since start: zero while nobody watches
        self._events: collections.deque[tuple[int, str]] = collections.deque(
            maxlen=RECENT_EVENTS)
        self._event_seq = 0
        self._frame_times: collections.deque[float] = collections.deque(maxlen=50)
        self._runs: collections.deque[int] = collections.deque(maxlen=50)
        self._stats: ServiceStats | None = None
        self._states: dict[str, CameraState] = {}
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
        return any(self._viewers.values())

    def publish_frame(self, view: FrameView) -> None:
        with self._cond:
            cam = view.camera
            first = not self._seqs or cam == next(iter(self._seqs))
            self._seqs[cam] = self._seqs.get(cam, 0) + 1
            if first:  # the page's frame rate and model runs: the first camera's
                self._frame_times.append(time.monotonic())
                self._runs.append(view.model_runs)
            if self._viewers.get(cam) or (first and self._viewers.get("")):
                self._views[cam] = view
                self._jpegs = {k: v for k, v in self._jpegs.items() if k[0] != cam}
                self._cond.notify_all()

    def publish(self, event: FaceEvent) -> None:
        with self._cond:
            self._event_seq += 1
            self._events.append((self._event_seq, event.to_json()))
            self._cond.notify_all()

    def publish_state(self, state: CameraState) -> None:
        self._states = {**self._states, state.camera: state}

    def publish_stats(self, stats: ServiceStats) -> None:
        self._stats = stats

    def health(self) -> OutputHealth:
        return {"web_rejected": self.rejected()}

    def publish_camera(self, camera: str, health: CameraHealth) -> None:
        self._cameras = {**self._cameras, camera: health}

    def close(self) -> None:
        with self._cond:
            self._views = {}
            self._cond.notify_all()
        if self.on_close is not None:
            self.on_close()

    # -- the viewer side (server threads) --------------------------------------------------
    def watch(self, camera: str = "") -> None:
        """A viewer of `camera` ("": the first camera) arrived."""
        with self._cond:
            self._viewers[camera] = self._viewers.get(camera, 0) + 1

    def unwatch(self, camera: str = "") -> None:
        with self._cond:
            self._viewers[camera] = max(0, self._viewers.get(camera, 0) - 1)
            if not any(self._viewers.values()):
                self._views, self._jpegs = {}, {}  # no frame kept for nobody

    def cameras(self) -> list[str]:
        """The cameras that sent frames, first camera first."""
        with self._cond:
            return list(self._seqs)

    def next_jpeg(self, after: int, overlays: tuple[str, ...], timeout: float = 1.0,
                  camera: str = "") -> tuple[int, bytes | None]:
        """The camera's first frame newer than `after` (waiting up to `timeout`; camera ""
        is the first camera), annotated and encoded once for everyone asking for the same
        overlays."""
        def name() -> str:
            return camera or next(iter(self._seqs), "")

        def ready() -> bool:
            return self._seqs.get(name(), 0) > after and name() in self._views

        with self._cond:
            self._cond.wait_for(ready, timeout)
            if not ready():
                return after, None
            cam = name()
            seq, view = self._seqs[cam], self._views[cam]
            cached = self._jpegs.get((cam, seq, overlays))
        if cached is not None:
            return seq, cached
        jpeg = to_jpeg(annotate(view, overlays))
        with self._cond:
            self.encoded += 1
            if self._seqs.get(cam) == seq:
                self._jpegs[(cam, seq, overlays)] = jpeg
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
        live = {"fps": round(fps, 1), "viewers": sum(self._viewers.values()),
                "encoded_frames": self.encoded,
                "model_runs_per_frame": round(sum(runs) / len(runs), 2) if runs else None}
        states = dict(self._states)
        first = next(iter(states.values()), None)
        return {"live": live,
                "state": asdict(first) if first else None,
                "states": {name: asdict(s) for name, s in states.items()},
                "cameras": {name: asdict(h) for name, h in self._cameras.items()},
                "service": asdict(self._stats) if self._stats else None}
