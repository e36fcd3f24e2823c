"""Face detectors, by the name `detector.kind` gives them.

To add one: a module here with a class that has `name`, `backend`, `last_latency_ms` and
`detect(image) -> list[Detection]` (detect/base.py), and a `build(cfg) -> Detector` function;
then one line below. Its settings go in the [detector] section.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from facelens.edge.detect import blazeface, haar
from facelens.edge.detect.base import Detector

if TYPE_CHECKING:
    from facelens.edge.config import Config

DETECTORS: dict[str, Callable[[Config], Detector]] = {
    "blazeface": blazeface.build,
    "haar": haar.build,
}
