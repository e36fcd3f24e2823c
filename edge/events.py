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
