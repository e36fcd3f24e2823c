"""Event outputs, one module each: stdout (JSON lines) and MQTT (outbox, discovery)."""

from edge.publish.base import Publisher
from edge.publish.stdout import StdoutPublisher

__all__ = ["Publisher", "StdoutPublisher"]
