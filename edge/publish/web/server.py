"""The live page's HTTP server (standard library): the page, an MJPEG stream, a snapshot,
server-sent events and stats; HTTP Basic auth, optional TLS, bounded connections.

Every request runs on a thread of its own and only reads from the LiveView; a viewer that
stops reading blocks its own thread until the socket timeout drops it, never the pipeline.
Only the page's own assets can be served: they are looked up by name in a fixed table, never
by joining the URL to a path.

Strangers cannot wear it down or fill the log: connections that have not yet sent a complete,
authorised request are capped (`max_pending`) and each gets `header_timeout_s` in all to send
its headers (a reaper shuts the ones that dawdle, a byte a second or not); a Host header that
is neither an IP address, localhost, this device's name nor one the owner listed gets 421
(DNS rebinding); failed TLS handshakes and clients that reset are one debug line each, and
counted (`web_rejected` in stats).
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import ipaddress
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
from facelens.edge.publish.web.annotate import OVERLAYS
from facelens.edge.publish.web.live import LiveView

log = logging.getLogger(__name__)

#: The page's assets: URL path -> (file in edge/publish/web/static, content type).
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
    return resources.files("facelens.edge.publish.web").joinpath("static", name).read_bytes()


def allowed_hosts(cfg: WebConfig) -> frozenset[str]:
    """Names (lower case) a Host header may carry besides IP addresses: localhost, this
    device's name with and without .local, the listen host, and the owner's `hosts`."""
    name = socket.gethostname().split(".")[0].lower()
    names = {"localhost", name, f"{name}.local", cfg.address[0].lower()}
    return frozenset(names | {h.lower().rstrip(".") for h in cfg.hosts})


def host_allowed(header: str | None, allowed: frozenset[str]) -> bool:
    """A rebinding attack needs a DNS name of the attacker's, in a browser (which always
    sends Host): an IP literal cannot be one, and a request without Host is no browser's."""
    if not header:
        return True
    host = header.strip().lower()
    if host.startswith("["):  # [v6]:port
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return host.rstrip(".") in allowed


class _Pending:
    """Connections that have not yet sent a complete, authorised request: at most `cap` in
    all and a quarter of that per client address (so one stranger's flood leaves room for
    the owner's own browser), each shut after `deadline_s` by one reaper thread (not a timer
    thread per connection)."""

    def __init__(self, cap: int, deadline_s: float, closing: threading.Event) -> None:
        self.cap, self.deadline_s, self._closing = cap, deadline_s, closing
        self.per_address = max(2, cap // 4)
        self._lock = threading.Lock()
        self._socks: dict[socket.socket, tuple[float, str]] = {}
        self.expired = 0
        threading.Thread(target=self._reap, name="web-reaper", daemon=True).start()

    def add(self, sock: socket.socket, address: str) -> bool:
        with self._lock:
            mine = sum(1 for _, a in self._socks.values() if a == address)
            if len(self._socks) >= self.cap or mine >= self.per_address:
                return False
            self._socks[sock] = (time.monotonic() + self.deadline_s, address)
            return True

    def done(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.pop(sock, None)

    def _reap(self) -> None:
        while not self._closing.wait(0.25):
            now = time.monotonic()
            with self._lock:
                late = [s for s, (t, _) in self._socks.items() if t <= now]
                for s in late:
                    del self._socks[s]
            for s in late:
                self.expired += 1
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], live: LiveView, cfg: WebConfig) -> None:
        self.live, self.cfg = live, cfg
        self.slots = threading.BoundedSemaphore(cfg.max_clients)
        self.closing = threading.Event()
        self.pending = _Pending(cfg.max_pending, cfg.header_timeout_s, self.closing)
        self.hosts = allowed_hosts(cfg)
        self.rejected = 0  # handshakes failed, resets, wrong hosts, too many pending, too slow
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, _Handler)

    def verify_request(self, request, client_address) -> bool:
        if self.pending.add(request, client_address[0]):
            return True
        self.rejected += 1
        log.debug("%s: dropped, too many connections pending (%d in all, %d per address)",
                  client_address[0], self.pending.cap, self.pending.per_address)
        return False

    def handle_error(self, request, client_address) -> None:
        """A stranger's broken handshake or reset: one debug line, never a traceback."""
        import sys

        self.rejected += 1
        exc = sys.exc_info()[1]
        log.debug("%s: %s: %s", client_address[0], type(exc).__name__, exc)

    def shutdown_request(self, request) -> None:
        self.pending.done(request)
        super().shutdown_request(request)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "FaceLens"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def setup(self) -> None:
        self.request.settimeout(min(SEND_TIMEOUT_S, self.server.cfg.header_timeout_s))
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
        scheme, _, token = self.headers.get("Authorization", "").strip().partition(" ")
        given = b""
        if scheme.lower() == "basic":  # RFC 7235: the scheme is case-insensitive
            try:
                user, _, given = base64.b64decode(token.strip()).partition(b":")
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
        try:
            self._get()
        except (OSError, TimeoutError):  # the viewer went away or stopped reading
            self.close_connection = True

    def _get(self) -> None:
        if not host_allowed(self.headers.get("Host"), self.server.hosts):
            self.server.rejected += 1
            self.server.pending.done(self.request)
            self.send_error(HTTPStatus.MISDIRECTED_REQUEST,
                            "unknown Host: add it to web.hosts")
            return
        if not self.server.slots.acquire(blocking=False):
            self.send_error(HTTPStatus.SERVICE_UNAVAILABLE, "too many viewers")
            return
        try:
            if not self._authorised():
                return
            # Authorised: no longer a stranger's connection, so no header deadline (an
            # MJPEG or event stream lasts as long as the viewer watches).
            self.server.pending.done(self.request)
            self.request.settimeout(SEND_TIMEOUT_S)
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
    @staticmethod
    def _camera(query: dict[str, list[str]]) -> str:
        """`?camera=NAME` ("" for none: the first camera)."""
        return (query.get("camera") or [""])[0]

    def _stream(self, query: dict[str, list[str]]) -> None:
        live, overlays, camera = self.server.live, self._overlays(query), self._camera(query)
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        period = 1.0 / self.server.cfg.max_fps
        live.watch(camera)
        try:
            seq, sent = 0, 0.0
            while not self.server.closing.is_set():
                wait = sent + period - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                seq, jpeg = live.next_jpeg(seq, overlays, camera=camera)
                if jpeg is None:
                    continue
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                 f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                sent = time.monotonic()
        finally:
            live.unwatch(camera)

    def _snapshot(self, query: dict[str, list[str]]) -> None:
        live, camera = self.server.live, self._camera(query)
        live.watch(camera)
        try:
            _, jpeg = live.next_jpeg(0, self._overlays(query), timeout=5.0, camera=camera)
        finally:
            live.unwatch(camera)
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
        self._where = f"{'https' if cfg.cert_file else 'http'}://{host}:{self.port}/"

    def start(self) -> None:
        """Serve (bound already in the constructor, so a taken port fails the build)."""
        self._thread.start()
        log.info("live view on %s", self._where)

    @property
    def rejected(self) -> int:
        return self._server.rejected + self._server.pending.expired

    def close(self) -> None:
        self._server.closing.set()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=2)
        self._server.server_close()
