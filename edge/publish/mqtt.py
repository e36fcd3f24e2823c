"""Events, state, stats and availability over MQTT (paho-mqtt 2.x), with nothing lost.

Events go through the durable outbox: `publish()` only writes the outbox and wakes the sender,
so the pipeline never waits on the network. A sender thread hands the oldest rows to paho
(a bounded window in flight) while connected and deletes each row when the broker
acknowledges it. paho reconnects with backoff by itself and re-sends what was in flight; rows
never acknowledged, even across a killed daemon, are sent again at the next start. So every
event arrives, in order, at least once (QoS 1): subscribers drop duplicates by `event_id`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from facelens.edge.config import Config, ConfigError, MqttConfig
from facelens.edge.errors import FaceLensError
from facelens.edge.events import CameraState, FaceEvent, ServiceStats, Snapshot
from facelens.edge.heads import HeadRule
from facelens.edge.publish.base import Publisher
from facelens.edge.publish.discovery import discovery_payloads
from facelens.edge.publish.outbox import Outbox
from facelens.edge.publish.topics import Topics

log = logging.getLogger(__name__)

#: Messages handed to paho and not yet acknowledged, at most.
WINDOW = 20
#: On shutdown, wait this long for the outbox to drain (the `end` events of open tracks).
FLUSH_TIMEOUT_S = 3.0


@dataclass
class _Delivery:
    """Sender-thread state: which outbox rows paho has, by message id."""

    inflight: dict[int, int] = field(default_factory=dict)  # mid -> outbox row id
    last_sent: int = 0


class MqttError(FaceLensError, RuntimeError):
    """The broker cannot be reached or refuses us (only `facelens check` treats it as fatal)."""

    exit_code = 5


def make_client(cfg: MqttConfig, device: str) -> mqtt.Client:
    """A paho client with the configured identity, credentials, TLS and backoff."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2,
                         client_id=cfg.client_id or f"facelens-{device}",
                         protocol=mqtt.MQTTv311, clean_session=True)
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.password.get_secret_value() or None)
    if cfg.tls:
        client.tls_set(ca_certs=str(cfg.ca_file) if cfg.ca_file else None,
                       certfile=str(cfg.cert_file) if cfg.cert_file else None,
                       keyfile=str(cfg.key_file) if cfg.key_file else None,
                       cert_reqs=ssl.CERT_REQUIRED)
        client.tls_insecure_set(cfg.tls_insecure)
    client.reconnect_delay_set(min_delay=max(1, round(cfg.reconnect_min_s)),
                               max_delay=max(1, round(cfg.reconnect_max_s)))
    return client


def probe(cfg: MqttConfig, device: str, timeout: float = 5.0) -> str:
    """Connect once and disconnect: what `facelens check` reports about the broker."""
    client = make_client(cfg, f"{device}-check")
    answer: list[str] = []
    done = threading.Event()

    def on_connect(_c, _u, _f, reason_code, _p) -> None:
        answer.append("" if not reason_code.is_failure else str(reason_code))
        done.set()

    client.on_connect = on_connect
    where = f"{cfg.host}:{cfg.port}{' (TLS)' if cfg.tls else ''}"
    try:
        client.connect(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
    except (OSError, ssl.SSLError) as exc:
        raise MqttError(f"cannot connect to MQTT broker {where}: {exc}") from exc
    client.loop_start()
    try:
        if not done.wait(timeout):
            raise MqttError(f"MQTT broker {where} did not answer within {timeout:g} s")
        if answer[0]:
            raise MqttError(f"MQTT broker {where} refused the connection: {answer[0]}")
    finally:
        client.disconnect()
        client.loop_stop()
    return f"connected to {where}" + (f" as {cfg.username}" if cfg.username else "")


def build(cfg: Config, heads: Sequence[HeadRule]) -> MqttPublisher | None:
    """The registry's builder: on when `mqtt.host` is set."""
    if not cfg.mqtt.host:
        return None
    return MqttPublisher(cfg.mqtt, device=cfg.service.device_id, camera=cfg.source.name,
                         heads=heads)


class MqttPublisher(Publisher):
    def __init__(self, cfg: MqttConfig, *, device: str, camera: str,
                 heads: Sequence[HeadRule] = ()) -> None:
        self.cfg = cfg
        self.topics = Topics(cfg.topic_prefix, device, camera)
        try:
            self.outbox = Outbox(cfg.outbox_path, max_events=cfg.outbox_max_events,
                                 max_age_s=cfg.outbox_max_age_s)
        except OSError as exc:
            raise ConfigError(f"mqtt.outbox_path = '{cfg.outbox_path}': {exc}") from exc
        self._discovery = discovery_payloads(self.topics, cfg.discovery_prefix, cfg.discovery,
                                             heads=heads)
        self._connected = threading.Event()
        self._closing = threading.Event()
        self._wake = threading.Event()
        self._acks: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._delivery = _Delivery()
        self._last_state: CameraState | None = None
        self._last_failure = ""
        self.client = self._make_client()
        self.client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
        self.client.loop_start()
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-sender", daemon=True)
        self._sender.start()

    # -- connection ------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        client = make_client(self.cfg, self.topics.device)
        client.will_set(self.topics.available, "offline", qos=1, retain=True)
        client.max_inflight_messages_set(WINDOW)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def _on_connect(self, client, _userdata, _flags, reason_code, _props) -> None:
        if reason_code.is_failure:
            self._failure(f"broker {self.cfg.host}:{self.cfg.port} refused the connection: "
                          f"{reason_code}")
            return
        log.info("connected to MQTT broker %s:%d", self.cfg.host, self.cfg.port)
        self._last_failure = ""
        client.publish(self.topics.available, "online", qos=1, retain=True)
        for topic, payload in self._discovery:
            client.publish(topic, payload, qos=1, retain=True)
        if self._last_state is not None:
            client.publish(self.topics.state, self._last_state.to_json(), qos=1, retain=True)
        self._connected.set()
        self._wake.set()

    def _on_connect_fail(self, _client, _userdata) -> None:
        self._failure(f"cannot connect to MQTT broker {self.cfg.host}:{self.cfg.port}; retrying")

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _props) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was and not self._closing.is_set():
            log.warning("lost the MQTT broker (%s); events wait in the outbox (%d now)",
                        reason_code, self.outbox.depth())

    def _failure(self, text: str) -> None:
        if text != self._last_failure:  # say it once, not at every retry
            log.error(text)
            self._last_failure = text

    def _on_publish(self, _client, _userdata, mid, _reason_code, _props) -> None:
        # Called on paho's thread while it holds its own lock: only hand the id over.
        self._acks.put(mid)
        self._wake.set()

    # -- the sender ------------------------------------------------------------------------
    def _drain_acks(self) -> None:
        d = self._delivery
        while True:
            try:
                mid = self._acks.get_nowait()
            except queue.Empty:
                return
            row = d.inflight.pop(mid, None)
            if row is not None:
                self.outbox.ack(row)

    def _send_loop(self) -> None:
        d = self._delivery
        while not self._closing.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            self._drain_acks()
            if not self._connected.is_set():
                continue
            room = WINDOW - len(d.inflight)
            if room <= 0:
                continue
            for msg in self.outbox.after(d.last_sent, room):
                info = self.client.publish(msg.topic, msg.payload, qos=msg.qos,
                                           retain=msg.retain)
                if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                    break
                d.inflight[info.mid] = msg.id
                d.last_sent = msg.id
            self._drain_acks()

    # -- the publisher interface -----------------------------------------------------------
    def publish(self, event: FaceEvent) -> None:
        self.outbox.put(self.topics.events, event.to_json().encode(), self.cfg.qos)
        self._wake.set()

    def publish_state(self, state: CameraState) -> None:
        self._last_state = state
        if self._connected.is_set():
            self.client.publish(self.topics.state, state.to_json(), qos=1, retain=True)

    def health(self) -> dict[str, int | bool]:
        return {"outbox_depth": self.outbox.depth(), "events_dropped": self.outbox.dropped(),
                "mqtt_connected": self._connected.is_set()}

    def publish_stats(self, stats: ServiceStats) -> None:
        if self._connected.is_set():
            self.client.publish(self.topics.stats, stats.to_json(), qos=1, retain=True)

    def publish_snapshot(self, snapshot: Snapshot) -> None:
        if self._connected.is_set():
            self.client.publish(self.topics.snapshot, snapshot.jpeg, qos=0)

    def close(self) -> None:
        """Deliver what can be delivered quickly, say `offline`, and disconnect."""
        deadline = time.monotonic() + FLUSH_TIMEOUT_S
        while self._connected.is_set() and self.outbox.depth() and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.05)
        self._closing.set()
        self._wake.set()
        self._sender.join(timeout=1.0)
        if self._connected.is_set():
            info = self.client.publish(self.topics.available, "offline", qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):  # lost meanwhile: the Will says it
                info.wait_for_publish(timeout=1.0)
        self.client.disconnect()
        self.client.loop_stop()
        left = self.outbox.depth()
        if left:
            log.info("%d event(s) stay in the outbox %s for the next start", left,
                     self.outbox.path)
        self.outbox.close()
