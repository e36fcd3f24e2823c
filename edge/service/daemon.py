"""The service: wires source → pipeline → publishers, owns the loop, signals and systemd.

The loop never waits on anything but the next frame (with a timeout), so the watchdog ping
proves the loop is alive even while the camera is away being reconnected; publishers never
block it either (MQTT writes to its outbox and returns).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from facelens.edge import __version__
from facelens.edge.camera.pipeline import Models, Pipeline
from facelens.edge.config import Config
from facelens.edge.events import CameraHealth, CameraState, FaceEvent, ServiceStats, iso_time
from facelens.edge.publish import build_publishers
from facelens.edge.publish.base import Publisher
from facelens.edge.publish.snapshot import snapshots
from facelens.edge.service.notify import SystemdNotifier
from facelens.edge.sources import FrameReader, ReaderStats, open_camera
from facelens.edge.sources.base import Frame

log = logging.getLogger(__name__)

STATS_LOG_INTERVAL_S = 60.0
#: How often the camera's health goes to the outputs that show it live (the page).
HEALTH_INTERVAL_S = 1.0
THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")


def cpu_temperature() -> float | None:
    """The SoC temperature in °C where the kernel exposes it (every Pi does)."""
    try:
        return round(int(THERMAL_ZONE.read_text().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


@dataclass
class Camera:
    """One camera in the service: its config (its source, motion, scan), its pipeline over
    the shared models, its reader, and its own counters and state."""

    cfg: Config
    pipeline: Pipeline
    reader: FrameReader | None = None
    state: CameraState | None = None
    frames: int = 0
    frames_at_stats: int = 0
    reader_at_stats: ReaderStats = field(default_factory=ReaderStats)
    last_frame: Frame | None = None
    ended: bool = False

    @property
    def name(self) -> str:
        return self.cfg.source.name


class Daemon:
    def __init__(self, cfg: Config, publishers: Sequence[Publisher] | None = None,
                 notifier: SystemdNotifier | None = None) -> None:
        self.cfg = cfg
        self.notifier = notifier or SystemdNotifier()
        self.stop = threading.Event()
        self.frames = 0
        self.started = time.monotonic()
        configs = cfg.camera_configs()
        models = Models(cfg)  # loaded once: every camera's pipeline shares them
        self.cameras = [Camera(c, Pipeline(c, models)) for c in configs]
        self.publishers = (list(publishers) if publishers is not None
                           else build_publishers(cfg, models.infos))
        self._stats_since = self.started

    @property
    def pipeline(self) -> Pipeline:
        """The first camera's pipeline (the only one of a single-camera config)."""
        return self.cameras[0].pipeline

    @property
    def reader(self) -> FrameReader | None:
        return self.cameras[0].reader

    def _emit(self, events: Sequence[FaceEvent]) -> None:
        for event in events:
            for pub in self.publishers:
                pub.publish(event)

    def _on_signal(self, signum: int, _frame: object) -> None:
        log.info("%s received: stopping", signal.Signals(signum).name)
        self.stop.set()

    def run(self) -> int:
        cfg = self.cfg
        for pub in self.publishers:
            pub.start()
        try:
            for cam in self.cameras:
                cam.reader = open_camera(cam.cfg.source, stop=self.stop)
                cam.reader.start()
        except Exception:
            for cam in self.cameras:
                if cam.reader is not None:
                    cam.reader.close()
            self._close_publishers()
            raise
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        names = ", ".join(c.reader.source.name for c in self.cameras if c.reader)
        log.info("facelens %s: %s %s; %s", __version__,
                 "sources" if len(self.cameras) > 1 else "source", names,
                 "; ".join(f"{k}: {v}" for k, v in self.pipeline.describe().items()))
        self.notifier.ready(f"processing {names}")
        now = time.monotonic()
        next_log, next_stats = now + STATS_LOG_INTERVAL_S, now + cfg.mqtt.stats_interval_s
        next_health = now
        for cam in self.cameras:
            self._publish_state(cam, time.time())
        # One camera waits on its reader; several take turns, each its newest frame, so a
        # camera with a burst of frames cannot starve another; an idle pass waits a little.
        wait = 1.0 if len(self.cameras) == 1 else 0.0
        turn = 0
        try:
            while not self.stop.is_set():
                self.notifier.watchdog()
                now = time.monotonic()
                if now >= next_stats:
                    next_stats = now + cfg.mqtt.stats_interval_s
                    self._publish_stats()
                if now >= next_log:
                    next_log = now + STATS_LOG_INTERVAL_S
                    self._log_stats()
                if now >= next_health:
                    next_health = now + HEALTH_INTERVAL_S
                    self._publish_health(now)
                live = [c for c in self.cameras if not c.ended]
                if not live:
                    break
                served = False
                for k in range(len(live)):
                    cam = live[(turn + k) % len(live)]
                    if self._serve(cam, wait):
                        served = True
                    if cfg.service.max_frames and self.frames >= cfg.service.max_frames:
                        self.stop.set()
                        break
                turn += 1
                if not served and wait == 0.0:
                    self.stop.wait(0.01)
        finally:
            self.notifier.stopping()
            for cam in self.cameras:
                if cam.last_frame is not None:
                    self._emit(cam.pipeline.finish(cam.last_frame.t, cam.last_frame.wall))
                    self._publish_state(cam, cam.last_frame.wall)
            self._publish_stats()  # the last window too: retained, it is what a reader finds
            for cam in self.cameras:
                if cam.reader is not None:
                    cam.reader.close()
            self._close_publishers()
            self._log_stats()
        return 0

    def _serve(self, cam: Camera, wait: float) -> bool:
        """Process this camera's next frame, if it has one; whether it had."""
        assert cam.reader is not None
        frame = cam.reader.get(timeout=wait)
        if frame is None:
            if cam.reader.ended:
                log.info("source %s ended after %d frames", cam.reader.source.name,
                         cam.frames)
                cam.ended = True
            return False
        cfg = cam.cfg
        cam.last_frame = frame
        events = cam.pipeline.process(frame)
        self._emit(events)
        watching = [pub for pub in self.publishers if pub.wants_frames]
        if watching:
            view = cam.pipeline.view(frame)
            for pub in watching:
                pub.publish_frame(view)
        if events and cfg.mqtt.snapshots != "off":
            for snap in snapshots(frame, events, cfg.mqtt.snapshots, cfg.detector.crop_margin):
                for pub in self.publishers:
                    pub.publish_snapshot(snap)
        self._publish_state(cam, frame.wall)
        cam.frames += 1
        self.frames += 1
        return True

    def _publish_health(self, now: float) -> None:
        labels = self.pipeline.models.open_labels()
        for cam in self.cameras:
            health = self._camera_health(cam, now, advance=False)
            for pub in self.publishers:
                pub.publish_camera(cam.name, health)
        for pub in self.publishers:
            for name, values in labels.items():
                pub.publish_labels(name, values)

    def _close_publishers(self) -> None:
        for pub in self.publishers:
            try:
                pub.close()
            except Exception:  # one broken output must not keep the others from closing
                log.exception("closing %s failed", type(pub).__name__)

    def _publish_state(self, cam: Camera, wall: float) -> None:
        state = cam.pipeline.tracker.state(wall)
        if not state.same_as(cam.state):
            cam.state = state
            for pub in self.publishers:
                pub.publish_state(state)

    def _camera_health(self, cam: Camera, now: float, *, advance: bool) -> CameraHealth:
        """A camera's figures since the last stats report; `advance` starts a new window."""
        assert cam.reader is not None
        r, before = cam.reader, cam.reader_at_stats
        dt = max(now - self._stats_since, 1e-3)
        health = CameraHealth(
            status=r.status(),
            camera_fps=round((r.stats.frames_read - before.frames_read) / dt, 2),
            process_fps=round((cam.frames - cam.frames_at_stats) / dt, 2),
            skipped_fps=round((r.stats.frames_dropped - before.frames_dropped) / dt, 2),
            reconnects=r.stats.reconnects, stalls=r.stats.stalls,
            seconds_since_frame=r.seconds_since_frame())
        if advance:
            cam.reader_at_stats = replace(r.stats)
            cam.frames_at_stats = cam.frames
        return health

    def _publish_stats(self) -> None:
        now = time.monotonic()
        frames = 0
        latency: dict[str, float] = {}
        economy: dict[str, float] = {}
        cameras: dict[str, CameraHealth] = {}
        for cam in self.cameras:  # each camera's own figures; the top level: the busiest's
            n, means = cam.pipeline.times.take_window()
            window = cam.pipeline.economy.take_window()
            frames += n
            for k, v in means.items():
                latency[k] = round(max(latency.get(k, 0.0), v), 2)
            for k, v in window.items():
                economy[k] = economy.get(k, 0) + v if k == "full_scans" else \
                    round(max(economy.get(k, 0.0), v), 3)
            if cam.reader is not None:
                cameras[cam.name] = replace(
                    self._camera_health(cam, now, advance=True),
                    latency_ms=means, economy=window)
        readers = [c.reader for c in self.cameras if c.reader is not None]
        stats = ServiceStats(
            device=self.cfg.service.device_id, time=iso_time(time.time()), version=__version__,
            uptime_s=round(time.monotonic() - self.started, 1),
            frames_processed=self.frames,
            frames_dropped=sum(r.stats.frames_dropped for r in readers),
            source_reconnects=sum(r.stats.reconnects for r in readers),
            fps=round(frames / max(now - self._stats_since, 1e-3), 2), latency_ms=latency,
            economy=economy, models=self.pipeline.describe(),
            cpu_temperature_c=cpu_temperature(), cameras=cameras)
        self._stats_since = now
        for pub in self.publishers:
            stats = replace(stats, **pub.health())
        for pub in self.publishers:
            pub.publish_stats(stats)

    def _log_stats(self) -> None:
        for cam in self.cameras:
            if cam.reader is None:
                continue
            means = cam.pipeline.times.mean()
            r = cam.reader.stats
            log.info("%s: frames processed %d, dropped %d, reconnects %d, stalls %d; "
                     "mean ms: %s", cam.name, cam.frames, r.frames_dropped, r.reconnects,
                     r.stalls, ", ".join(f"{k} {v:.1f}" for k, v in means.items()))
