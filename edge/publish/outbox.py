"""A durable, bounded queue of messages waiting for the broker's acknowledgement.

Every event is written here before anything tries to send it, and leaves only when the broker
has acknowledged it (PUBACK for QoS 1). So a broker that is down, a network that is gone, or
a daemon that is killed loses nothing: the rows are sent, in order, when the broker is back or
the daemon starts again. SQLite in WAL mode with synchronous=NORMAL survives a killed process
completely; a power cut may lose the last moments. The queue is bounded in count and age:
when it must drop, it drops the oldest and counts them.

A file SQLite cannot read as a database (what an SD card can leave after a power cut) must not
keep the service down until someone logs in: it is moved aside with a timestamp (kept, for a
post-mortem), whatever rows can still be read from it are carried over, and a new outbox is
made. A file that cannot be created at all stays an error.
"""

from __future__ import annotations

import contextlib
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
CREATE TABLE IF NOT EXISTS notes (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
#: SQLite's result codes for a file that is damaged or not a database at all.
CORRUPT_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


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
        #: Where a damaged outbox was moved at start ("" if none).
        self.moved_aside = ""
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            if getattr(exc, "sqlite_errorcode", None) not in CORRUPT_CODES:
                raise OSError(f"cannot open the MQTT outbox {self.path}: {exc}") from exc
            self._db = self._replace_damaged(exc)

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
            db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        except sqlite3.Error:
            db.close()
            raise
        return db

    def _replace_damaged(self, exc: sqlite3.DatabaseError) -> sqlite3.Connection:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                src.rename(f"{aside}{suffix}")
        self.moved_aside = str(aside)
        try:
            db = self._open()
        except sqlite3.Error as again:
            raise OSError(f"cannot open the MQTT outbox {self.path}: {again}") from again
        saved = self._salvage(aside, db)
        log.error("MQTT outbox %s could not be read (%s): moved aside to %s, %d message(s) "
                  "recovered from it, a new outbox started", self.path, exc, aside, saved)
        return db

    @staticmethod
    def _salvage(aside: Path, db: sqlite3.Connection) -> int:
        """Copy the rows that can still be read, in order, until the first unreadable page.
        A file whose header is gone ("not a database") yields none: SQLite cannot find its
        tables, and guessing rows from raw pages could deliver garbage."""
        saved = 0
        with contextlib.suppress(sqlite3.Error):
            old = sqlite3.connect(f"file:{aside}?mode=ro", uri=True)
            try:
                for row in old.execute("SELECT topic, payload, qos, retain, created FROM outbox "
                                       "ORDER BY id"):
                    db.execute("INSERT INTO outbox (topic, payload, qos, retain, created) "
                               "VALUES (?,?,?,?,?)", row)
                    saved += 1
            finally:
                old.close()
        return saved

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

    def note(self, name: str) -> str | None:
        """A small text the publisher keeps across runs (what it last told the broker)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM notes WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_note(self, name: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT INTO notes VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET "
                             "value = excluded.value", (name, value))

    def close(self) -> None:
        with self._lock:
            self._db.close()
