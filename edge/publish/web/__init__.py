"""The live page: see what the camera sees (boxes, tracks, labels), served by the daemon.

`start` makes a LiveView (the publisher the daemon feeds) and a WebServer (the HTTP side, on
threads of its own); `build` is its line in the outputs registry (publish/__init__.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from facelens.edge.analyse.base import AnalyserInfo
from facelens.edge.config import Config, ConfigError
from facelens.edge.publish.base import Publisher
from facelens.edge.publish.web.live import LiveView
from facelens.edge.publish.web.server import WebServer


def start(cfg: Config) -> LiveView:
    """The live view and its server, listening on `web.listen`."""
    live = LiveView(cfg.web.max_fps)
    try:
        server = WebServer(cfg.web, live)
    except OSError as exc:
        raise ConfigError(f"web.listen = {cfg.web.listen!r}: cannot listen there: "
                          f"{exc.strerror or exc}") from exc
    live.on_start = server.start
    live.on_close = server.close
    live.rejected = lambda: server.rejected
    live.port = server.port
    return live


def build(cfg: Config, heads: Sequence[AnalyserInfo]) -> Publisher | None:
    """The registry's builder: on when `web.enabled` is true."""
    return start(cfg) if cfg.web.enabled else None
