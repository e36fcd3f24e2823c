"""Event outputs, one module each: stdout (JSON lines) and MQTT (outbox, discovery)."""

from facelens.edge.publish.base import Publisher
from facelens.edge.publish.stdout import StdoutPublisher

__all__ = ["Publisher", "StdoutPublisher"]
