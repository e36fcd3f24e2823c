"""The durable outbox: order, acknowledgement, bounds, and survival across reopening."""

from __future__ import annotations

import sqlite3
import time

import pytest

from facelens.edge.publish.outbox import Outbox


def test_messages_come_back_in_order_until_acknowledged(tmp_path):
    box = Outbox(tmp_path / "o.db")
    ids = [box.put("t", f"m{i}".encode(), 1) for i in range(5)]
    assert ids == sorted(ids)
    first = box.after(0, 3)
    assert [m.payload for m in first] == [b"m0", b"m1", b"m2"]
    assert [m.payload for m in box.after(first[-1].id, 10)] == [b"m3", b"m4"]
    box.ack(ids[1])
    assert [m.payload for m in box.after(0, 10)] == [b"m0", b"m2", b"m3", b"m4"]
    assert box.depth() == 4


def test_survives_reopening_like_a_restarted_daemon(tmp_path):
    box = Outbox(tmp_path / "o.db")
    for i in range(3):
        box.put("facelens/d/events", f"e{i}".encode(), 1)
    box.ack(box.after(0, 1)[0].id)
    del box  # no close: as if the process were killed
    again = Outbox(tmp_path / "o.db")
    assert [m.payload for m in again.after(0, 10)] == [b"e1", b"e2"]
    assert again.put("t", b"e3", 1) > again.after(0, 10)[-2].id


def test_count_bound_drops_the_oldest_and_counts(tmp_path, caplog):
    box = Outbox(tmp_path / "o.db", max_events=10)
    for i in range(25):
        box.put("t", str(i).encode(), 1)
    assert box.depth() == 10
    assert [int(m.payload) for m in box.after(0, 100)] == list(range(15, 25))
    assert box.dropped() == 15
    assert "dropped the 1 oldest" in caplog.text
    box.close()
    assert Outbox(tmp_path / "o.db").dropped() == 15  # the count survives restarts


def test_age_bound_drops_stale_messages(tmp_path):
    box = Outbox(tmp_path / "o.db", max_age_s=60)
    box.put("t", b"old", 1)
    db = sqlite3.connect(tmp_path / "o.db")
    db.execute("UPDATE outbox SET created = ?", (time.time() - 3600,))
    db.commit()
    db.close()
    box.put("t", b"new", 1)
    assert [m.payload for m in box.after(0, 10)] == [b"new"]
    assert box.dropped() == 1


def test_a_file_that_is_not_a_database_is_moved_aside_and_replaced(tmp_path, caplog):
    path = tmp_path / "o.db"
    path.write_bytes(b"\x00garbage left by a power cut\xff" * 200)
    box = Outbox(path)
    aside = box.moved_aside
    assert aside and aside.startswith(f"{path}.damaged-")
    assert (tmp_path / aside).read_bytes().startswith(b"\x00garbage")  # kept, for a look
    assert box.put("t", b"new", 1) and [m.payload for m in box.after(0, 10)] == [b"new"]
    lines = [r for r in caplog.records if "moved aside" in r.getMessage()]
    assert len(lines) == 1 and "0 message(s) recovered" in lines[0].getMessage()


def test_a_damaged_outbox_gives_up_the_rows_it_still_can(tmp_path):
    path = tmp_path / "o.db"
    box = Outbox(path)
    for i in range(300):
        box.put("t", f"{i:04d}".encode() * 100, 1)
    box.close()
    sqlite3.connect(path).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
    data = bytearray(path.read_bytes())
    page = 4096
    data[-3 * page:] = b"\xa5" * (3 * page)  # the last pages: rows near the end of the table
    path.write_bytes(bytes(data))
    again = Outbox(path)
    rows = [int(m.payload[:4]) for m in again.after(0, 1000)]
    assert again.moved_aside
    assert 0 < len(rows) < 300 and rows == list(range(len(rows)))  # the oldest, in order


def test_an_outbox_that_cannot_be_created_is_an_error(tmp_path):
    """Not damage but a path that can hold no database (here a folder): no moving aside."""
    (tmp_path / "o.db").mkdir()
    with pytest.raises(OSError, match="cannot open the MQTT outbox"):
        Outbox(tmp_path / "o.db")
    assert not list(tmp_path.glob("*.damaged-*"))
