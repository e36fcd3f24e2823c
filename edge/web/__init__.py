"""The live page: see what the camera sees (boxes, tracks, labels), served by the daemon.

`start` makes a LiveView (the publisher the daemon feeds) and a WebServer (the HTTP side, on
threads of its own); publish/web.py registers it among the outputs.
"""

from __future__ import annotations

from facelens.edge.config import Config, ConfigError
from facelens.edge.web.live import LiveView
from facelens.edge.web.server import WebServer


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
