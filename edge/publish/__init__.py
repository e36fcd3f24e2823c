"""Outputs, by name: every event, state change, stats report and snapshot goes to each.

To add one: a module here with a `Publisher` subclass (publish/base.py) and a
`build(cfg, analysers) -> Publisher | None` that returns None when its config section leaves it
off; then one line below, and its config section. Order matters: MQTT first, so that an event
is in the durable outbox before any other output shows it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from facelens.edge.analyse.base import AnalyserInfo
from facelens.edge.config import Config
from facelens.edge.publish import mqtt, stdout, web
from facelens.edge.publish.base import Publisher

PUBLISHERS: dict[str, Callable[[Config, Sequence[AnalyserInfo]], Publisher | None]] = {
    "mqtt": mqtt.build,
    "stdout": stdout.build,
    "web": web.build,
}


def build_publishers(cfg: Config, heads: Sequence[AnalyserInfo]) -> list[Publisher]:
    """Every output the config turns on, in registry order."""
    return [pub for build in PUBLISHERS.values() if (pub := build(cfg, heads)) is not None]
