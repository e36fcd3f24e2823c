"""A real mosquitto broker per test on a free loopback port, certificates, and a subscriber.

The suite never uses the machine's own broker on 1883: each test starts its own, so it can
stop it, restart it, and configure TLS and passwords without touching anything else.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, up: bool = True, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} did not come {'up' if up else 'down'}")


@dataclass
class Broker:
    """mosquitto with a config of our own; `persistent` keeps sessions across restarts."""

    workdir: Path
    port: int = field(default_factory=free_port)
    tls: dict[str, Path] | None = None  # ca, cert, key (+ require_certificate)
    password_file: Path | None = None
    persistent: bool = False
    proc: subprocess.Popen | None = None

    def config(self) -> str:
        lines = [f"listener {self.port} 127.0.0.1",
                 f"allow_anonymous {'false' if self.password_file else 'true'}",
                 "log_dest stderr", "log_type error", "log_type warning",
                 # Started as root (CI), mosquitto would switch to its own user, which cannot
                 # read pytest's private temporary folders. Ignored when not root.
                 "user root"]
        if self.password_file:
            lines.append(f"password_file {self.password_file}")
        if self.tls:
            lines += [f"cafile {self.tls['ca']}", f"certfile {self.tls['cert']}",
                      f"keyfile {self.tls['key']}"]
            if self.tls.get("require_certificate"):
                lines.append("require_certificate true")
        if self.persistent:
            lines += ["persistence true", f"persistence_location {self.workdir}/",
                      "autosave_interval 1"]
        return "\n".join(lines) + "\n"

    def start(self) -> Broker:
        conf = self.workdir / f"mosquitto-{self.port}.conf"
        conf.write_text(self.config())
        with open(self.workdir / "mosquitto.log", "ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)],
                                         stdout=subprocess.DEVNULL, stderr=log)
        wait_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # mosquitto saves its persistence on SIGTERM
            self.proc.wait(timeout=10)
        wait_port(self.port, up=False)


class Subscriber:
    """Collects messages; with a fixed client id and clean_session=False on a persistent
    broker it also receives what was published while it was away."""

    def __init__(self, port: int, topics: list[str], *, client_id: str = "",
                 persistent: bool = False, **connect) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=not persistent)
        self.topics = topics
        if "username" in connect:
            self.client.username_pw_set(connect["username"], connect.get("password"))
        if "tls" in connect:
            self.client.tls_set(**connect["tls"])
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 1)
        self._subscribed = threading.Event()
        self.client.connect_async("127.0.0.1", port, keepalive=5)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("subscriber could not connect and subscribe")

    def _on_connect(self, client, _u, _f, rc, _p) -> None:
        if not rc.is_failure:
            for t in self.topics:
                client.subscribe(t, qos=1)
            self._subscribed.set()

    def _on_message(self, _c, _u, msg) -> None:
        with self._lock:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))

    def on(self, topic: str) -> list[bytes]:
        with self._lock:
            return [p for t, p, _ in self.messages if t == topic]

    def json(self, topic: str) -> list[dict]:
        return [json.loads(p) for p in self.on(topic)]

    def wait(self, predicate, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.05)
        return predicate(self)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def make_certs(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1/localhost, and a client certificate."""
    folder.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.crt")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, cn in (("server", "localhost"), ("client", "facelens-test")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}", "-keyout",
            f"{name}.key", "-out", f"{name}.csr")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", f"{name}.crt",
            *(["-extfile", "san.ext"] if name == "server" else []))
    return {n: folder / n for n in ("ca.crt", "server.crt", "server.key", "client.crt",
                                    "client.key")}
