"""What every output does with an event. The daemon hands each event to every publisher."""

from __future__ import annotations

from typing import Protocol

from edge.events import FaceEvent


class Publisher(Protocol):
    def publish(self, event: FaceEvent) -> None: ...

    def close(self) -> None: ...
