"""A durable, bounded queue of messages waiting for the broker's acknowledgement.

Every event is written here before anything tries to send it, and leaves only when the broker
has acknowledged it (PUBACK for QoS 1). So a broker that is down, a network that is gone, or
a daemon that is killed loses nothing: the rows are sent, in order, when the broker is back or
the daemon starts again. SQLite in WAL mode with synchronous=NORMAL survives a killed process
completely; a power cut may lose the last moments. The queue is bounded in count and age:
when it must drop, it drops the oldest and counts them.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class Message:
    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created: float


class Outbox:
    def __init__(self, path: str | Path, *, max_events: int = 10_000,
                 max_age_s: float = 7 * 86400) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_events, self.max_age_s = max_events, max_age_s
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise OSError(f"cannot open the MQTT outbox {self.path}: {exc}") from exc

    def put(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> int:
        """Store a message durably; returns its id (ids grow: they are the sending order)."""
        now = time.time()
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO outbox (topic, payload, qos, retain, created) VALUES (?,?,?,?,?)",
                (topic, payload, qos, int(retain), now))
            self._enforce_bounds(now)
            return int(cur.lastrowid or 0)

    def _enforce_bounds(self, now: float) -> None:
        dropped = self._db.execute("DELETE FROM outbox WHERE created < ?",
                                   (now - self.max_age_s,)).rowcount
        excess = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] - self.max_events
        if excess > 0:
            dropped += self._db.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)",
                (excess,)).rowcount
        if dropped:
            self._db.execute(
                "INSERT INTO counters VALUES ('dropped', ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (dropped,))
            log.warning("MQTT outbox full or stale: dropped the %d oldest undelivered "
                        "message(s) (bounds: %d messages, %.0f s)", dropped, self.max_events,
                        self.max_age_s)

    def after(self, last_id: int, limit: int) -> list[Message]:
        """The oldest messages with an id above `last_id`."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, qos, retain, created FROM outbox WHERE id > ? "
                "ORDER BY id LIMIT ?", (last_id, limit)).fetchall()
        return [Message(r[0], r[1], bytes(r[2]), r[3], bool(r[4]), r[5]) for r in rows]

    def ack(self, message_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (message_id,))

    def depth(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def dropped(self) -> int:
        """Messages dropped by the bounds since the outbox was created (kept across runs)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        with self._lock:
            self._db.close()
