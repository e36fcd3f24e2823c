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
from dataclasses import replace
from pathlib import Path

from facelens.edge import __version__
from facelens.edge.camera.pipeline import Pipeline
from facelens.edge.config import Config
from facelens.edge.events import CameraHealth, CameraState, FaceEvent, ServiceStats, iso_time
from facelens.edge.publish import build_publishers
from facelens.edge.publish.base import Publisher
from facelens.edge.publish.snapshot import snapshots
from facelens.edge.service.notify import SystemdNotifier
from facelens.edge.sources import FrameReader, ReaderStats, open_camera

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


class Daemon:
    def __init__(self, cfg: Config, publishers: Sequence[Publisher] | None = None,
                 notifier: SystemdNotifier | None = None) -> None:
        self.cfg = cfg
        self.notifier = notifier or SystemdNotifier()
        self.stop = threading.Event()
        self.frames = 0
        self.started = time.monotonic()
        self.pipeline = Pipeline(cfg)
        self.publishers = (list(publishers) if publishers is not None
                           else build_publishers(cfg, self.pipeline.models.infos))
        self.reader: FrameReader | None = None
        self._state: CameraState | None = None
        self._stats_since = self.started
        self._frames_at_stats = 0
        self._reader_at_stats = ReaderStats()

    def _emit(self, events: Sequence[FaceEvent]) -> None:
        for event in events:
            for pub in self.publishers:
                pub.publish(event)

    def _on_signal(self, signum: int, _frame: object) -> None:
        log.info("%s received: stopping", signal.Signals(signum).name)
        self.stop.set()

    def run(self) -> int:
        cfg, pipeline = self.cfg, self.pipeline
        self.reader = reader = open_camera(cfg.source, stop=self.stop)
        source = reader.source
        for pub in self.publishers:
            pub.start()
        try:
            reader.start()
        except Exception:
            self._close_publishers()
            raise
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        log.info("facelens %s: source %s; %s", __version__, source.name,
                 "; ".join(f"{k}: {v}" for k, v in pipeline.describe().items()))
        self.notifier.ready(f"processing {source.name}")
        last_frame = None
        now = time.monotonic()
        next_log, next_stats = now + STATS_LOG_INTERVAL_S, now + cfg.mqtt.stats_interval_s
        next_health = now
        self._publish_state(time.time())
        try:
            while not self.stop.is_set():
                self.notifier.watchdog()
                frame = reader.get(timeout=1.0)
                now = time.monotonic()
                if now >= next_stats:
                    next_stats = now + cfg.mqtt.stats_interval_s
                    self._publish_stats()
                if now >= next_log:
                    next_log = now + STATS_LOG_INTERVAL_S
                    self._log_stats()
                if now >= next_health:
                    next_health = now + HEALTH_INTERVAL_S
                    health = self._camera_health(now, advance=False)
                    labels = pipeline.models.open_labels()
                    for pub in self.publishers:
                        pub.publish_camera(cfg.source.name, health)
                        for name, values in labels.items():
                            pub.publish_labels(name, values)
                if frame is None:
                    if reader.ended:
                        log.info("source %s ended after %d frames", source.name, self.frames)
                        break
                    continue
                last_frame = frame
                events = pipeline.process(frame)
                self._emit(events)
                watching = [pub for pub in self.publishers if pub.wants_frames]
                if watching:
                    view = pipeline.view(frame)
                    for pub in watching:
                        pub.publish_frame(view)
                if events and cfg.mqtt.snapshots != "off":
                    for snap in snapshots(frame, events, cfg.mqtt.snapshots,
                                          cfg.detector.crop_margin):
                        for pub in self.publishers:
                            pub.publish_snapshot(snap)
                self._publish_state(frame.wall)
                self.frames += 1
                if cfg.service.max_frames and self.frames >= cfg.service.max_frames:
                    break
        finally:
            self.notifier.stopping()
            if last_frame is not None:
                self._emit(pipeline.finish(last_frame.t, last_frame.wall))
                self._publish_state(last_frame.wall)
            self._publish_stats()  # the last window too: retained, it is what a reader finds
            reader.close()
            self._close_publishers()
            self._log_stats()
        return 0

    def _close_publishers(self) -> None:
        for pub in self.publishers:
            try:
                pub.close()
            except Exception:  # one broken output must not keep the others from closing
                log.exception("closing %s failed", type(pub).__name__)

    def _publish_state(self, wall: float) -> None:
        state = self.pipeline.tracker.state(wall)
        if not state.same_as(self._state):
            self._state = state
            for pub in self.publishers:
                pub.publish_state(state)

    def _camera_health(self, now: float, *, advance: bool) -> CameraHealth:
        """The camera's figures since the last stats report; `advance` starts a new window."""
        assert self.reader is not None
        r, before = self.reader, self._reader_at_stats
        dt = max(now - self._stats_since, 1e-3)
        health = CameraHealth(
            status=r.status(),
            camera_fps=round((r.stats.frames_read - before.frames_read) / dt, 2),
            process_fps=round((self.frames - self._frames_at_stats) / dt, 2),
            skipped_fps=round((r.stats.frames_dropped - before.frames_dropped) / dt, 2),
            reconnects=r.stats.reconnects, stalls=r.stats.stalls,
            seconds_since_frame=r.seconds_since_frame())
        if advance:
            self._reader_at_stats = replace(r.stats)
            self._frames_at_stats = self.frames
        return health

    def _publish_stats(self) -> None:
        now = time.monotonic()
        frames, latency = self.pipeline.times.take_window()
        reader_stats = self.reader.stats if self.reader else None
        cameras = ({self.cfg.source.name: self._camera_health(now, advance=True)}
                   if self.reader else {})
        stats = ServiceStats(
            device=self.cfg.service.device_id, time=iso_time(time.time()), version=__version__,
            uptime_s=round(time.monotonic() - self.started, 1),
            frames_processed=self.frames,
            frames_dropped=reader_stats.frames_dropped if reader_stats else 0,
            source_reconnects=reader_stats.reconnects if reader_stats else 0,
            fps=round(frames / max(now - self._stats_since, 1e-3), 2), latency_ms=latency,
            economy=self.pipeline.economy.take_window(),
            models=self.pipeline.describe(), cpu_temperature_c=cpu_temperature(),
            cameras=cameras)
        self._stats_since = now
        for pub in self.publishers:
            stats = replace(stats, **pub.health())
        for pub in self.publishers:
            pub.publish_stats(stats)

    def _log_stats(self) -> None:
        if self.reader is None:
            return
        means = self.pipeline.times.mean()
        log.info("frames processed %d, dropped %d, reconnects %d, stalls %d; mean ms: %s",
                 self.frames, self.reader.stats.frames_dropped, self.reader.stats.reconnects,
                 self.reader.stats.stalls,
                 ", ".join(f"{k} {v:.1f}" for k, v in means.items()))
