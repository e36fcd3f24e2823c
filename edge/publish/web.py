"""The live page as an output: registered here, built in facelens.edge.web."""

from __future__ import annotations

from collections.abc import Sequence

from facelens.edge.analyse.base import AnalyserInfo
from facelens.edge.config import Config
from facelens.edge.publish.base import Publisher


def build(cfg: Config, heads: Sequence[AnalyserInfo]) -> Publisher | None:
    """The registry's builder: on when `web.enabled` is true."""
    if not cfg.web.enabled:
        return None
    from facelens.edge.web import start  # the page's package imports this one's base

    return start(cfg)
