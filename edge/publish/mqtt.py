"""Events, state, stats and availability over MQTT (paho-mqtt 2.x), with nothing lost.

Events go through the durable outbox: `publish()` only writes the outbox and wakes the sender,
so the pipeline never waits on the network. A sender thread hands the oldest rows to paho
(a bounded window in flight) while connected and deletes each row when the broker
acknowledges it. Rows never acknowledged, even across a killed daemon, are sent again at the
next start. So every event arrives, in order, at least once (QoS 1): subscribers drop
duplicates by `event_id`.

One thread of ours owns the paho client (not paho's `loop_start()`): paho's own reconnect
sleeps through its backoff and cannot be woken, so a daemon told to stop just after the broker
came back would give up on its backlog. Ours retries on `edge.retry`'s schedule (low cap,
jitter), is woken at once by `close()`, which then spends its whole drain budget delivering,
and makes every paho call itself (state, stats and snapshots reach it through a queue), since
paho writes to the socket from whichever thread publishes when no paho thread runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from facelens.edge.analyse.base import AnalyserInfo
from facelens.edge.config import Config, ConfigError, MqttConfig
from facelens.edge.errors import FaceLensError
from facelens.edge.events import CameraState, FaceEvent, OutputHealth, ServiceStats, Snapshot
from facelens.edge.publish.base import Publisher
from facelens.edge.publish.discovery import discovery_payloads
from facelens.edge.publish.outbox import Outbox
from facelens.edge.publish.topics import Topics
from facelens.edge.publish.triggers import TriggerFeed
from facelens.edge.retry import RetrySchedule

log = logging.getLogger(__name__)

#: Messages handed to paho and not yet acknowledged, at most.
WINDOW = 20
#: On shutdown, wait this long for the outbox to drain (the `end` events of open tracks).
FLUSH_TIMEOUT_S = 3.0
#: The outbox note naming the people whose Home Assistant entities were published.
PEOPLE_NOTE = "discovery_people"
#: A TCP connect to a broker that does not answer gives up after this long.
CONNECT_TIMEOUT_S = 3.0
#: How long one turn of the network loop waits on the socket: the longest a new event waits
#: before it is handed to paho (20 turns a second cost a few syscalls each).
LOOP_TIMEOUT_S = 0.05


@dataclass
class _Delivery:
    """Sender-thread state: which outbox rows paho has, by message id."""

    inflight: dict[int, int] = field(default_factory=dict)  # mid -> outbox row id
    last_sent: int = 0


class MqttError(FaceLensError, RuntimeError):
    """The broker cannot be reached or refuses us (only `facelens check` treats it as fatal)."""

    exit_code = 5


def make_client(cfg: MqttConfig, device: str) -> mqtt.Client:
    """A paho client with the configured identity, protocol, credentials, TLS and backoff."""
    # MQTT 5 has no clean_session (connect() asks for a clean start instead).
    session = ({"protocol": mqtt.MQTTv5} if cfg.protocol == "5"
               else {"protocol": mqtt.MQTTv311, "clean_session": True})
    client = mqtt.Client(CallbackAPIVersion.VERSION2,
                         client_id=cfg.client_id or f"facelens-{device}", **session)
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.password.get_secret_value() or None)
    if cfg.tls:
        client.tls_set(ca_certs=str(cfg.ca_file) if cfg.ca_file else None,
                       certfile=str(cfg.cert_file) if cfg.cert_file else None,
                       keyfile=str(cfg.key_file) if cfg.key_file else None,
                       cert_reqs=ssl.CERT_REQUIRED)
        client.tls_insecure_set(cfg.tls_insecure)
    client.connect_timeout = CONNECT_TIMEOUT_S
    return client


def connect(client: mqtt.Client, cfg: MqttConfig) -> None:
    """Connect (blocking, up to CONNECT_TIMEOUT_S). MQTT 5 starts clean and asks the broker
    to keep the session `session_expiry_s` (QoS 1 messages in flight survive a short drop)."""
    if cfg.protocol != "5":
        client.connect(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
        return
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = int(cfg.session_expiry_s)
    client.connect(cfg.host, cfg.port, keepalive=cfg.keepalive_s,
                   clean_start=mqtt.MQTT_CLEAN_START_FIRST_ONLY, properties=props)


def expiry(cfg: MqttConfig, created: float) -> Properties | None:
    """MQTT 5 message expiry for an event or trigger: what is left of `event_expiry_s` since
    it happened (an event an hour late is no doorbell); none with MQTT 3.1.1 or 0."""
    if cfg.protocol != "5" or not cfg.event_expiry_s:
        return None
    props = Properties(PacketTypes.PUBLISH)
    props.MessageExpiryInterval = max(1, int(cfg.event_expiry_s - (time.time() - created)))
    return props


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
        connect(client, cfg)
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


def build(cfg: Config, heads: Sequence[AnalyserInfo]) -> MqttPublisher | None:
    """The registry's builder: on when `mqtt.host` is set."""
    if not cfg.mqtt.host:
        return None
    return MqttPublisher(cfg.mqtt, device=cfg.service.device_id,
                         cameras=[c.source.name for c in cfg.camera_configs()], heads=heads)


class MqttPublisher(Publisher):
    def __init__(self, cfg: MqttConfig, *, device: str, cameras: Sequence[str],
                 heads: Sequence[AnalyserInfo] = ()) -> None:
        self.cfg = cfg
        #: Per camera, its topics; the device's own (availability, stats) are every camera's.
        self._topics = {c: Topics(cfg.topic_prefix, device, c) for c in cameras}
        self.topics = self._topics[cameras[0]]
        try:
            self.outbox = Outbox(cfg.outbox_path, max_events=cfg.outbox_max_events,
                                 max_age_s=cfg.outbox_max_age_s)
        except OSError as exc:
            raise ConfigError(f"mqtt.outbox_path = '{cfg.outbox_path}': {exc}") from exc
        self._heads = tuple(heads)
        # The people whose entities the broker holds, from the last run: assumed unchanged
        # until the gallery says otherwise, so un-enrolling someone while the service was
        # stopped still removes their entities (and a restart makes none flap).
        self._people: tuple[str, ...] = tuple(json.loads(self.outbox.note(PEOPLE_NOTE) or "[]"))
        self._discovery = self._discovery_for(self._people, were=self._people)
        self._triggers = TriggerFeed()
        self._connected = threading.Event()
        self._closing = threading.Event()  # no more outbox rows are handed to paho
        self._stopped = threading.Event()  # the network thread ends
        self._hurry = threading.Event()  # close(): try the broker now, not after the backoff
        self._rediscover = threading.Event()  # the discovery configs changed: send them
        self._acks: queue.SimpleQueue[int] = queue.SimpleQueue()
        #: Retained or best-effort messages from other threads: (topic, payload, qos, retain).
        self._direct: queue.SimpleQueue[tuple[str, str | bytes, int, bool]] = queue.SimpleQueue()
        self._delivery = _Delivery()
        self._say_offline = threading.Event()
        self._offline_mid: int | None = None
        self._offline_acked = threading.Event()
        #: Retained messages kept to send again on connect, by topic: each camera's state,
        #: last person, and where each enrolled person was last seen.
        self._retained: dict[str, str] = {}
        self._last_failure = ""
        self._retry = RetrySchedule(cfg.reconnect_min_s, cfg.reconnect_max_s)
        self.client = self._make_client()
        self._network = threading.Thread(target=self._network_loop, name="mqtt-network",
                                         daemon=True)

    def start(self) -> None:
        """Connect (in the background): the network thread owns the client from here on."""
        self._network.start()

    @property
    def _where(self) -> str:
        return f"{self.cfg.host}:{self.cfg.port}"

    # -- connection ------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        client = make_client(self.cfg, self.topics.device)
        client.will_set(self.topics.available, "offline", qos=1, retain=True)
        client.max_inflight_messages_set(WINDOW)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def _network_loop(self) -> None:
        """Connect, serve the socket, send, and reconnect on the retry schedule until closed."""
        linked = False  # a TCP connection is up (its CONNACK may still be pending or refused)
        next_try = 0.0
        while not self._stopped.is_set():
            if linked:
                rc = self.client.loop(timeout=LOOP_TIMEOUT_S)
                if rc == mqtt.MQTT_ERR_SUCCESS:
                    self._send()
                    continue
                linked = False
                # The first retry after losing a broker that worked is immediate.
                next_try = (time.monotonic() if self._retry.attempts == 0
                            else time.monotonic() + self._retry.next_delay())
                continue
            self._drop_direct()
            wait = next_try - time.monotonic()
            if wait > 0 and not self._hurry.is_set():
                self._hurry.wait(min(wait, 1.0))
                continue
            self._hurry.clear()
            try:
                connect(self.client, self.cfg)
                linked = True
            except (OSError, ssl.SSLError, ValueError) as exc:
                next_try = time.monotonic() + self._retry.next_delay()
                self._failure(f"cannot connect to MQTT broker {self._where} ({exc}); retrying")
                if self._retry.reminder_due():
                    log.warning("MQTT broker %s still unreachable after %.0f s (%d attempts); "
                                "%d event(s) wait in the outbox", self._where,
                                self._retry.down_for(), self._retry.attempts,
                                self.outbox.depth())
        if linked:
            with contextlib.suppress(Exception):
                self.client.disconnect()
                self.client.loop(timeout=0.05)  # flush the DISCONNECT packet

    def _on_connect(self, client, _userdata, _flags, reason_code, _props) -> None:
        if reason_code.is_failure:
            self._failure(f"broker {self._where} refused the connection: {reason_code}")
            return
        log.info("connected to MQTT broker %s", self._where)
        self._last_failure = ""
        self._retry.reset()
        client.publish(self.topics.available, "online", qos=1, retain=True)
        self._rediscover.clear()  # before reading: a change from now on is sent by _send
        for topic, payload in self._discovery:
            client.publish(topic, payload, qos=1, retain=True)
        for topic, kept in list(self._retained.items()):
            client.publish(topic, kept, qos=1, retain=True)
        self._connected.set()

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
        if mid == self._offline_mid:
            self._offline_acked.set()
        self._acks.put(mid)

    # -- sending (on the network thread) ----------------------------------------------------
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

    def _drop_direct(self) -> None:
        """While disconnected, state and stats are re-sent on connect; the rest is stale."""
        with contextlib.suppress(queue.Empty):
            while True:
                self._direct.get_nowait()

    def _send(self) -> None:
        self._drain_acks()
        if not self._connected.is_set():
            return
        if self._rediscover.is_set():
            self._rediscover.clear()
            for config_topic, config in self._discovery:
                self.client.publish(config_topic, config, qos=1, retain=True)
        with contextlib.suppress(queue.Empty):
            while True:
                topic, payload, qos, retain = self._direct.get_nowait()
                self.client.publish(topic, payload, qos=qos, retain=retain)
        if self._say_offline.is_set() and self._offline_mid is None:
            self._offline_mid = self.client.publish(self.topics.available, "offline", qos=1,
                                                    retain=True).mid
        d = self._delivery
        room = WINDOW - len(d.inflight)
        if room <= 0 or self._closing.is_set():
            return
        for msg in self.outbox.after(d.last_sent, room):
            info = self.client.publish(msg.topic, msg.payload, qos=msg.qos, retain=msg.retain,
                                       properties=expiry(self.cfg, msg.created))
            if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                break
            d.inflight[info.mid] = msg.id
            d.last_sent = msg.id

    # -- the publisher interface -----------------------------------------------------------
    def _discovery_for(self, people: tuple[str, ...],
                       were: tuple[str, ...]) -> list[tuple[str, bytes]]:
        out: dict[str, bytes] = {}
        for topics in self._topics.values():  # the device's own entities once
            out.update(discovery_payloads(topics, self.cfg.discovery_prefix,
                                          self.cfg.discovery, heads=self._heads,
                                          people=people, were=were,
                                          snapshots=self.cfg.snapshots != "off",
                                          several=len(self._topics) > 1))
        return list(out.items())

    def _for(self, camera: str) -> Topics:
        return self._topics.get(camera, self.topics)

    def _keep(self, topic: str, payload: str) -> None:
        """A retained message: sent now if connected, and again on every connect."""
        self._retained[topic] = payload
        if self._connected.is_set():
            self._direct.put((topic, payload, 1, True))

    def publish(self, event: FaceEvent) -> None:
        topics = self._for(event.camera)
        self.outbox.put(topics.events, event.to_json().encode(), self.cfg.qos)
        for trigger, payload in self._triggers.fire(event):
            self.outbox.put(trigger.topic(topics), payload, 1)
        ident = event.identity
        if ident is None or not ident.name:
            return
        self._keep(topics.person(ident.name), json.dumps(
            {"camera": event.camera, "last_seen": event.frame_time, "score": ident.score,
             "track_id": event.track_id}, separators=(",", ":")))
        if self._retained.get(topics.last_person) != ident.name:  # sent when it changes
            self._keep(topics.last_person, ident.name)

    def publish_labels(self, analyser: str, labels: tuple[str, ...]) -> None:
        """Enrolled people changed: their entities and triggers come and go with them."""
        if analyser != "identity" or labels == self._people:
            return
        were, self._people = self._people, labels
        self._discovery = self._discovery_for(labels, were=were)
        for name in set(were) - set(labels):  # no attributes kept for someone removed
            for topics in self._topics.values():
                if self._retained.pop(topics.person(name), None) is not None \
                        and self._connected.is_set():
                    self._direct.put((topics.person(name), b"", 1, True))
        self.outbox.set_note(PEOPLE_NOTE, json.dumps(list(labels)))
        # Sent by the network thread: on its next turn if connected, else on connect. (Asking
        # here whether it is connected would race a connect that read the old configs.)
        self._rediscover.set()

    def publish_state(self, state: CameraState) -> None:
        self._keep(self._for(state.camera).state, state.to_json())

    def health(self) -> OutputHealth:
        return {"outbox_depth": self.outbox.depth(), "events_dropped": self.outbox.dropped(),
                "mqtt_connected": self._connected.is_set(),
                "outbox_moved_aside": self.outbox.moved_aside}

    def publish_stats(self, stats: ServiceStats) -> None:
        if self._connected.is_set():
            self._direct.put((self.topics.stats, stats.to_json(), 1, True))

    def publish_snapshot(self, snapshot: Snapshot) -> None:
        if self._connected.is_set():
            self._direct.put((self._for(snapshot.camera).snapshot, snapshot.jpeg, 0, False))

    def close(self) -> None:
        """Deliver what can be delivered within the drain budget, say `offline`, disconnect.

        A broker that is away when the daemon is told to stop is tried at once and again
        until the budget ends: the backlog is worth the few seconds systemd gives us."""
        deadline = time.monotonic() + (FLUSH_TIMEOUT_S if self._network.is_alive() else 0.0)
        while (self.outbox.depth() or not self._direct.empty()) and time.monotonic() < deadline:
            if not self._connected.is_set():
                self._hurry.set()
            time.sleep(0.02)
        self._closing.set()
        if not self._connected.is_set():  # nothing left to send, but `offline` is worth a try
            self._hurry.set()
            self._connected.wait(max(0.0, min(1.0, deadline - time.monotonic())))
        if self._connected.is_set():  # the Will says `offline` if the broker misses this
            self._say_offline.set()
            self._offline_acked.wait(1.0)
        self._stopped.set()
        self._hurry.set()
        if self._network.is_alive():
            self._network.join(timeout=CONNECT_TIMEOUT_S + 1.0)
        left = self.outbox.depth()
        if left:
            log.info("%d message(s) (events, triggers) stay in the outbox %s for the next "
                     "start", left,
                     self.outbox.path)
        self.outbox.close()
