"""When to try a lost peer (a broker, a camera) again, and when to remind the log it is gone.

One schedule for both, because what an owner needs from both is the same: back within seconds
of the peer's return (a low cap), no thundering herd of devices retrying in step after a
router reboot (jitter), no busy loop, and a log that says each state change once plus a
reminder every few minutes while the peer stays away — not a line per attempt.
"""

from __future__ import annotations

import random
import threading
import time

#: While a peer stays away, remind the log this often.
REMIND_EVERY_S = 60.0


class RetrySchedule:
    """Delays that double from `low` to `high`, each drawn in [delay/2, delay] (jitter), and
    reset when the peer answers again."""

    def __init__(self, low: float, high: float, *, rng: random.Random | None = None) -> None:
        self.low, self.high = low, high
        self._delay = low
        self._rng = rng or random.Random()
        self.attempts = 0
        self.down_since: float | None = None
        self._next_reminder = 0.0

    def next_delay(self) -> float:
        """The wait before the next attempt; each call counts one failed attempt."""
        now = time.monotonic()
        if self.down_since is None:
            self.down_since, self._next_reminder = now, now + REMIND_EVERY_S
        self.attempts += 1
        delay = self._delay * self._rng.uniform(0.5, 1.0)
        self._delay = min(self.high, self._delay * 2)
        return delay

    def wait(self, stop: threading.Event) -> float:
        """Sleep the next delay, or less if `stop` is set meanwhile; returns the delay."""
        delay = self.next_delay()
        stop.wait(delay)
        return delay

    def reminder_due(self) -> bool:
        """True once every REMIND_EVERY_S while the peer is down."""
        now = time.monotonic()
        if self.down_since is None or now < self._next_reminder:
            return False
        self._next_reminder = now + REMIND_EVERY_S
        return True

    def down_for(self) -> float:
        return 0.0 if self.down_since is None else time.monotonic() - self.down_since

    def reset(self) -> None:
        self._delay, self.attempts, self.down_since = self.low, 0, None
