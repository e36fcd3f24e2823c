"""The MQTT topic layout, in one place: the README's contract is this file."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    prefix: str
    device: str
    camera: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.device}"

    @property
    def available(self) -> str:
        """`online` (retained) while running; `offline` (retained) as Last Will and on exit."""
        return f"{self.base}/available"

    @property
    def events(self) -> str:
        return f"{self.base}/events"

    @property
    def state(self) -> str:
        return f"{self.base}/{self.camera}/state"

    @property
    def stats(self) -> str:
        return f"{self.base}/stats"

    @property
    def snapshot(self) -> str:
        return f"{self.base}/{self.camera}/snapshot"

    @property
    def last_person(self) -> str:
        """The name of the last enrolled person seen (retained)."""
        return f"{self.base}/{self.camera}/last_person"

    def person(self, name: str) -> str:
        """Where an enrolled person was last seen here: camera, time, score (retained)."""
        return f"{self.base}/{self.camera}/person/{name}"

    def trigger(self, kind: str, subtype: str) -> str:
        """A Home Assistant device trigger's topic: a message here fires it."""
        return f"{self.base}/{self.camera}/trigger/{kind}/{subtype}"
