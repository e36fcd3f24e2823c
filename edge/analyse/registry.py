"""The analysers registry: one line per kind of analyser (see the package's docstring)."""


from __future__ import annotations

from collections.abc import Callable, Sequence

from facelens.edge.analyse import heads, identity, liveness
from facelens.edge.analyse.base import Analyser
from facelens.edge.config import Config

ANALYSERS: dict[str, Callable[[Config], Sequence[Analyser]]] = {
    "heads": heads.build,
    "identity": identity.build,
    "liveness": liveness.build,
}


def build_analysers(cfg: Config) -> list[Analyser]:
    """Every analyser the config switches on, in registry order (heads first)."""
    out: list[Analyser] = []
    for build in ANALYSERS.values():
        out += build(cfg)
    names = [a.info.name for a in out]
    if len(names) != len(set(names)):
        raise ValueError(f"two analysers share a name: {names}")
    return out
