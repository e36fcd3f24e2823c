"""The live page's HTTP server (standard library): the page, an MJPEG stream, a snapshot,
server-sent events and stats; HTTP Basic auth, optional TLS, bounded connections.

Every request runs on a thread of its own and only reads from the LiveView; a viewer that
stops reading blocks its own thread until the socket timeout drops it, never the pipeline.
Only the page's own assets can be served: they are looked up by name in a fixed table, never
by joining the URL to a path.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import socket
import ssl
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from facelens.edge.config import WebConfig
from facelens.edge.web.annotate import OVERLAYS
from facelens.edge.web.live import LiveView

log = logging.getLogger(__name__)

#: The page's assets: URL path -> (file in edge/web/static, content type).
ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
#: A socket write that takes longer than this drops the viewer.
SEND_TIMEOUT_S = 5.0
BOUNDARY = "facelensframe"
SEND_BUFFER = 128 * 1024


def _asset(name: str) -> bytes:
    return resources.files("facelens.edge.web").joinpath("static", name).read_bytes()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], live: LiveView, cfg: WebConfig) -> None:
        self.live, self.cfg = live, cfg
        self.slots = threading.BoundedSemaphore(cfg.max_clients)
        self.closing = threading.Event()
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "FaceLens"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def setup(self) -> None:
        self.request.settimeout(SEND_TIMEOUT_S)
        # A small send buffer: a viewer that stops reading fills it within a few frames
        # and is dropped after SEND_TIMEOUT_S, instead of the kernel queueing megabytes.
        self.request.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        super().setup()

    # -- access ----------------------------------------------------------------------------
    def _authorised(self) -> bool:
        secret = self.server.cfg.password.get_secret_value()
        if not secret:
            return True
        header = self.headers.get("Authorization", "")
        given = b""
        if header.startswith("Basic "):
            try:
                user, _, given = base64.b64decode(header[6:]).partition(b":")
            except ValueError:
                user = b""
            if not hmac.compare_digest(user, self.server.cfg.username.encode()):
                given = b"\0" + given  # still compare, in constant time, and fail
        if hmac.compare_digest(given, secret.encode()):
            return True
        self.send_response(HTTPStatus.UNAUTHORIZED)
        self.send_header("WWW-Authenticate", 'Basic realm="FaceLens", charset="UTF-8"')
        self.send_header("Content-Length", "0")
        self.end_headers()
        return False

    def do_GET(self) -> None:
        if not self.server.slots.acquire(blocking=False):
            self.send_error(HTTPStatus.SERVICE_UNAVAILABLE, "too many viewers")
            return
        try:
            if not self._authorised():
                return
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            route = {"/stream.mjpg": self._stream, "/snapshot.jpg": self._snapshot,
                     "/api/events": self._events, "/api/stats": self._stats}.get(url.path)
            if route is not None:
                route(query)
            elif url.path in ASSETS:
                name, kind = ASSETS[url.path]
                self._send(HTTPStatus.OK, kind, _asset(name))
            else:
                self.send_error(HTTPStatus.NOT_FOUND)
        except (OSError, TimeoutError):  # the viewer went away or stopped reading
            self.close_connection = True
        finally:
            self.server.slots.release()

    def _send(self, status: HTTPStatus, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    @staticmethod
    def _overlays(query: dict[str, list[str]]) -> tuple[str, ...]:
        asked = ",".join(query.get("overlays", [])).split(",")
        return tuple(o for o in OVERLAYS if o in asked)

    # -- routes ----------------------------------------------------------------------------
    def _stream(self, query: dict[str, list[str]]) -> None:
        live, overlays = self.server.live, self._overlays(query)
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        period = 1.0 / self.server.cfg.max_fps
        live.watch()
        try:
            seq, sent = 0, 0.0
            while not self.server.closing.is_set():
                wait = sent + period - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                seq, jpeg = live.next_jpeg(seq, overlays)
                if jpeg is None:
                    continue
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                 f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                sent = time.monotonic()
        finally:
            live.unwatch()

    def _snapshot(self, query: dict[str, list[str]]) -> None:
        live = self.server.live
        live.watch()
        try:
            _, jpeg = live.next_jpeg(0, self._overlays(query), timeout=5.0)
        finally:
            live.unwatch()
        if jpeg is None:
            self.send_error(HTTPStatus.SERVICE_UNAVAILABLE, "no frame yet")
            return
        self._send(HTTPStatus.OK, "image/jpeg", jpeg)

    def _events(self, _query: dict[str, list[str]]) -> None:
        live = self.server.live
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        last = 0
        while not self.server.closing.is_set():
            events = live.events_after(last, timeout=15.0)
            if not events:
                self.wfile.write(b": keep-alive\n\n")
            for n, payload in events:
                self.wfile.write(f"id: {n}\ndata: {payload}\n\n".encode())
                last = n
            self.wfile.flush()

    def _stats(self, _query: dict[str, list[str]]) -> None:
        body = json.dumps(self.server.live.stats(), separators=(",", ":")).encode()
        self._send(HTTPStatus.OK, "application/json", body)


class WebServer:
    """The server on its own thread; `close()` stops it and its viewers within a second."""

    def __init__(self, cfg: WebConfig, live: LiveView) -> None:
        host, port = cfg.address
        self._server = _Server((host, port), live, cfg)
        if cfg.cert_file and cfg.key_file:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(cfg.cert_file), str(cfg.key_file))
            # The handshake runs on the viewer's own thread (setup), not in accept().
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True,
                                                  do_handshake_on_connect=False)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="web",
                                        kwargs={"poll_interval": 0.5}, daemon=True)
        self._thread.start()
        scheme = "https" if cfg.cert_file else "http"
        log.info("live view on %s://%s:%d/", scheme, host, self.port)

    def close(self) -> None:
        self._server.closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)
