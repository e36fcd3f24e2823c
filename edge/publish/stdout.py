"""Events as JSON lines on standard output: for pipes, `jq`, and the demo."""

from __future__ import annotations

import sys
from typing import TextIO

from edge.events import FaceEvent
from edge.publish.base import Publisher


class StdoutPublisher(Publisher):
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def publish(self, event: FaceEvent) -> None:
        self.stream.write(event.to_json() + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()
