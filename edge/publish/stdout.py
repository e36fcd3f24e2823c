"""Events as JSON lines on standard output: for pipes, `jq`, and the demo.

A pipe whose reader stops reading fills after 64 KiB, and then every write blocks. So the
processing loop only queues a line here, and a writer thread of its own writes it to the file
descriptor. When the queue is full, new lines are dropped and counted, never waited for:
stdout is a view, not the record — the MQTT outbox is what keeps every event. On shutdown the
writer gets `CLOSE_TIMEOUT_S` to finish; a reader that never reads cannot hold the exit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Sequence
from typing import TextIO

from facelens.edge.analyse.base import AnalyserInfo
from facelens.edge.config import Config
from facelens.edge.events import FaceEvent
from facelens.edge.publish.base import Publisher

log = logging.getLogger(__name__)

#: Lines waiting for a slow reader, at most (about 0.5 MB of events).
QUEUE_LINES = 1000
#: On close, wait this long for the queued lines to be written.
CLOSE_TIMEOUT_S = 2.0


class StdoutPublisher(Publisher):
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.dropped = 0
        self._lines: queue.Queue[str | None] = queue.Queue(maxsize=QUEUE_LINES)
        self._fd = self._fileno(self.stream)
        self._writer = threading.Thread(target=self._write_loop, name="stdout-writer",
                                        daemon=True)
        self._writer.start()

    @staticmethod
    def _fileno(stream: TextIO) -> int | None:
        """The raw descriptor, so a blocked write never holds the stream's buffer lock (which
        the interpreter needs at exit); None for in-memory streams."""
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            return None
        stream.flush()
        return fd

    def _write_loop(self) -> None:
        while (line := self._lines.get()) is not None:
            try:
                if self._fd is None:
                    self.stream.write(line)
                    self.stream.flush()
                    continue
                data = line.encode()
                while data:
                    data = data[os.write(self._fd, data):]
            except OSError as exc:  # the reader closed the pipe: nobody to write for
                log.warning("standard output closed (%s): no more events there", exc)
                return

    def publish(self, event: FaceEvent) -> None:
        try:
            self._lines.put_nowait(event.to_json() + "\n")
        except queue.Full:
            if not self.dropped:
                log.warning("standard output is not being read: dropping events there (the "
                            "MQTT outbox still keeps them)")
            self.dropped += 1

    def close(self) -> None:
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        with contextlib.suppress(queue.Full):
            self._lines.put(None, timeout=CLOSE_TIMEOUT_S)
        self._writer.join(timeout=max(0.0, deadline - time.monotonic()))
        if self._writer.is_alive():
            log.warning("standard output is not being read: %d event line(s) not written",
                        self._lines.qsize())
        if self.dropped:
            log.warning("%d event line(s) dropped on standard output", self.dropped)


def build(cfg: Config, heads: Sequence[AnalyserInfo]) -> StdoutPublisher | None:
    """The registry's builder: on when `output.stdout` is true."""
    return StdoutPublisher() if cfg.output.stdout else None
