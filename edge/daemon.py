"""The service: wires source → pipeline → publishers, owns the loop, signals and systemd.

The loop never waits on anything but the next frame (with a timeout), so the watchdog ping
proves the loop is alive even while the camera is away being reconnected.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Sequence

from edge import __version__
from edge.config import Config
from edge.notify import SystemdNotifier
from edge.pipeline import Pipeline
from edge.publish.base import Publisher
from edge.sources import FrameReader, open_source

log = logging.getLogger(__name__)

STATS_LOG_INTERVAL_S = 60.0


class Daemon:
    def __init__(self, cfg: Config, publishers: Sequence[Publisher],
                 notifier: SystemdNotifier | None = None) -> None:
        self.cfg = cfg
        self.publishers = list(publishers)
        self.notifier = notifier or SystemdNotifier()
        self.stop = threading.Event()
        self.frames = 0
        self.pipeline: Pipeline | None = None
        self.reader: FrameReader | None = None

    def _emit(self, events) -> None:
        for event in events:
            for pub in self.publishers:
                pub.publish(event)

    def _on_signal(self, signum: int, _frame: object) -> None:
        log.info("%s received: stopping", signal.Signals(signum).name)
        self.stop.set()

    def run(self) -> int:
        cfg = self.cfg
        self.pipeline = pipeline = Pipeline(cfg)
        src = cfg.source
        source = open_source(src.uri, width=src.width, height=src.height, fps=src.fps)
        self.reader = reader = FrameReader(
            source, latest_only=src.latest_only, loop=src.loop,
            reconnect_min_s=src.reconnect_min_s, reconnect_max_s=src.reconnect_max_s,
            stop=self.stop)
        reader.start()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        stages = pipeline.describe()
        log.info("facelens %s: source %s; %s", __version__, source.name,
                 "; ".join(f"{k}: {v}" for k, v in stages.items()))
        self.notifier.ready(f"processing {source.name}")
        last_frame = None
        next_log = time.monotonic() + STATS_LOG_INTERVAL_S
        try:
            while not self.stop.is_set():
                self.notifier.watchdog()
                frame = reader.get(timeout=1.0)
                if frame is None:
                    if reader.ended:
                        log.info("source %s ended after %d frames", source.name, self.frames)
                        break
                    continue
                last_frame = frame
                self._emit(pipeline.process(frame))
                self.frames += 1
                if cfg.service.max_frames and self.frames >= cfg.service.max_frames:
                    break
                if time.monotonic() >= next_log:
                    next_log += STATS_LOG_INTERVAL_S
                    self._log_stats()
        finally:
            self.notifier.stopping()
            if last_frame is not None:
                self._emit(pipeline.finish(last_frame.t, last_frame.wall))
            reader.close()
            for pub in self.publishers:
                pub.close()
            self._log_stats()
        return 0

    def _log_stats(self) -> None:
        if self.pipeline is None or self.reader is None:
            return
        means = self.pipeline.times.mean()
        log.info("frames processed %d, dropped %d, reconnects %d; mean ms: %s", self.frames,
                 self.reader.stats.frames_dropped, self.reader.stats.reconnects,
                 ", ".join(f"{k} {v:.1f}" for k, v in means.items()))
