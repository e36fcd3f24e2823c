"""The live page against strangers on loopback: a DNS-rebinding Host, a lowercase auth scheme,
broken TLS handshakes and resets (one debug line each, counted, never a traceback), a
connection that sends its headers a byte at a time, and more pending connections than allowed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import ssl
import time

import pytest

from tests.mqtt_helpers import free_port, make_certs
from tests.test_web import LiveDaemon

pytestmark = pytest.mark.timeout(180)


def raw_get(port: int, host: str | None, path: str = "/api/stats", auth: str = "") -> bytes:
    head = f"GET {path} HTTP/1.1\r\nConnection: close\r\n"
    head += f"Host: {host}\r\n" if host is not None else ""
    head += f"Authorization: {auth}\r\n" if auth else ""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall((head + "\r\n").encode())
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    return reply


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """True once the server closed the connection (EOF or reset) within `timeout`."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.fixture
def daemon(astronaut_clip, cli_env, tmp_path):
    d = LiveDaemon(astronaut_clip.path, cli_env, tmp_path, hosts='["camera.example.lan"]')
    yield d
    d.stop()


def test_only_known_hosts_are_answered(daemon):
    port = daemon.port
    device = socket.gethostname().split(".")[0]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "[::1]", f"{device}.local:{port}",
                 "camera.example.lan", "CAMERA.example.lan.", None):
        assert status_of(raw_get(port, host)) == 200, host
    for host in ("attacker.example", f"attacker.example:{port}", "camera.example.lan.evil"):
        reply = raw_get(port, host, "/snapshot.jpg")
        assert status_of(reply) == 421, host
        assert b"\xff\xd8" not in reply  # no JPEG


def test_the_basic_scheme_is_case_insensitive(astronaut_clip, cli_env, tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("correct horse\n")
    d = LiveDaemon(astronaut_clip.path, cli_env, tmp_path, listen=f"0.0.0.0:{free_port()}",
                   password_file=str(secret))
    try:
        token = base64.b64encode(b"facelens:correct horse").decode()
        for scheme in ("Basic", "basic", "BASIC"):
            assert status_of(raw_get(d.port, "localhost", auth=f"{scheme} {token}")) == 200
        assert status_of(raw_get(d.port, "localhost", auth=f"Bearer {token}")) == 401
    finally:
        d.stop()


def test_broken_handshakes_and_resets_are_quiet_and_counted(astronaut_clip, cli_env, tmp_path):
    certs = make_certs(tmp_path / "certs")
    d = LiveDaemon(astronaut_clip.path, cli_env, tmp_path, cert_file=str(certs["server.crt"]),
                   key_file=str(certs["server.key"]))
    try:
        for _ in range(3):  # plain HTTP on the TLS port
            with contextlib.suppress(OSError):
                raw_get(d.port, "localhost")
        for _ in range(3):  # a scanner: connect, reset
            s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
        ctx = ssl.create_default_context(cafile=str(certs["ca.crt"]))

        def stats() -> dict:
            with socket.create_connection(("127.0.0.1", d.port), timeout=10) as raw, \
                    ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"GET /api/stats HTTP/1.1\r\nHost: localhost\r\n"
                          b"Connection: close\r\n\r\n")
                reply = b""
                while chunk := s.recv(65536):
                    reply += chunk
            return json.loads(reply.partition(b"\r\n\r\n")[2])

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            service = stats()["service"]
            if service and service.get("web_rejected", 0) >= 3:
                break
            time.sleep(0.2)
        assert service and service["web_rejected"] >= 3, service
    finally:
        d.stop()
    log = (tmp_path / "daemon.err").read_text()
    assert "Traceback" not in log and "SSLError" not in log, log[-3000:]


def test_a_connection_that_never_finishes_its_headers_is_dropped(astronaut_clip, cli_env,
                                                                  tmp_path):
    d = LiveDaemon(astronaut_clip.path, cli_env, tmp_path, header_timeout_s="1.5")
    try:
        # A byte at a time: each read is quick, the headers never end. Dropped at the deadline.
        slow = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        slow.sendall(b"GET / HTTP/1.1\r\n")
        deadline, closed = time.monotonic() + 30, False
        while time.monotonic() < deadline and not closed:
            try:
                slow.sendall(b"X")
            except OSError:
                closed = True
                break
            closed = closed_by_server(slow, 0.2)
        assert closed, "a connection that never finishes its headers was kept"
        slow.close()
    finally:
        d.stop()
    assert "Traceback" not in (tmp_path / "daemon.err").read_text()


def _from(address: str, port: int) -> socket.socket:
    """A connection from another loopback address (127.0.0.0/8 is all this machine)."""
    return socket.create_connection(("127.0.0.1", port), timeout=10,
                                    source_address=(address, 0))


def test_more_pending_connections_than_allowed_are_dropped(astronaut_clip, cli_env, tmp_path):
    # The header deadline is far away: a connection closed within the test is a cap's doing.
    d = LiveDaemon(astronaut_clip.path, cli_env, tmp_path, header_timeout_s="120",
                   max_pending="4")  # 4 in all, 2 per client address
    try:
        first = [_from("127.0.0.2", d.port) for _ in range(2)]
        over = _from("127.0.0.2", d.port)  # accepted in order: the third from one address
        assert closed_by_server(over, 30.0)
        second = [_from("127.0.0.3", d.port) for _ in range(2)]
        full = _from("127.0.0.4", d.port)  # a new address, but 4 are pending in all
        assert closed_by_server(full, 30.0)
        idle = first + second
        assert not any(closed_by_server(s, 0.01) for s in idle)
        for s in [over, full, *idle]:
            s.close()
        # Once they are gone the page serves again.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if status_of(raw_get(d.port, "localhost")) == 200:
                    break
            except (OSError, IndexError):
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("the page did not serve again")
    finally:
        d.stop()
    assert "Traceback" not in (tmp_path / "daemon.err").read_text()
