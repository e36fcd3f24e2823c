"""Event outputs, one module each (stdout now; MQTT with its outbox and discovery next)."""

from edge.publish.base import Publisher
from edge.publish.stdout import StdoutPublisher

__all__ = ["Publisher", "StdoutPublisher"]
