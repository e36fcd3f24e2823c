"""The events FaceLens publishes: one per step of a face track's life, never one per frame.

Plain frozen dataclasses, serialised one way (`to_dict`), so every publisher sends the same
payload. `schema_version` changes when a field changes meaning or goes away.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Literal

EVENT_SCHEMA_VERSION = 1
EventType = Literal["new", "update", "end"]


def iso_time(unix: float) -> str:
    """UTC ISO 8601 with milliseconds, the form Home Assistant and most tools parse."""
    return datetime.fromtimestamp(unix, tz=UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class EmotionResult:
    """The track's smoothed emotion: top label, its probability, and all seven."""

    label: str
    score: float
    probabilities: dict[str, float]


@dataclass(frozen=True)
class AuthenticityResult:
    """The track's smoothed verdict: `label` is real or fake, `score` its probability."""

    label: str
    score: float
    fake_probability: float


@dataclass(frozen=True)
class TrackSummary:
    """Carried by `end`: what happened while the face was there."""

    duration_s: float
    frames: int
    dominant_emotion: str | None
    authenticity: str | None


@dataclass(frozen=True)
class FaceEvent:
    type: EventType
    event_id: str
    track_id: str
    seq: int  # 0 for `new`, then +1 per event of the track: order per track
    device: str
    camera: str
    frame_time: str
    started_at: str
    ended_at: str | None
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels of the frame
    frame_size: tuple[int, int]  # width, height
    detection_score: float
    emotion: EmotionResult | None
    authenticity: AuthenticityResult | None
    summary: TrackSummary | None = None
    schema_version: int = EVENT_SCHEMA_VERSION

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))


@dataclass(frozen=True)
class CameraState:
    """What a camera sees now: retained on `<prefix>/<device>/<camera>/state`, so a subscriber
    (or Home Assistant after a restart) knows the present without waiting for an event."""

    device: str
    camera: str
    faces: int  # confirmed tracks present
    dominant_emotion: str | None  # most common smoothed top emotion among them
    fake_present: bool  # any present face judged fake
    authenticity_enabled: bool
    updated_at: str
    schema_version: int = EVENT_SCHEMA_VERSION

    def same_as(self, other: CameraState | None) -> bool:
        """Equal but for the time: publish only when something a subscriber sees changed."""
        return other is not None and (self.faces, self.dominant_emotion, self.fake_present) == (
            other.faces, other.dominant_emotion, other.fake_present)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


@dataclass(frozen=True)
class Snapshot:
    """A JPEG of a newly confirmed face (or its frame), only when the owner enabled it."""

    event_id: str
    track_id: str
    camera: str
    jpeg: bytes
