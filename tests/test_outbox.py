"""The durable outbox: order, acknowledgement, bounds, and survival across reopening."""

from __future__ import annotations

import sqlite3
import time

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
