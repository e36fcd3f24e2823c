"""The events FaceLens publishes: one per step of a face track's life, never one per frame.

Plain frozen dataclasses, serialised one way (`to_dict`), so every publisher sends the same
payload. `schema_version` changes when a field changes meaning or goes away.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, TypedDict

import numpy as np

from facelens.edge.analyse.base import AnalyserInfo, Verdict
from facelens.edge.contract import AUTHENTICITY_LABELS, FER2013_LABELS

EVENT_SCHEMA_VERSION = 1
EventType = Literal["new", "update", "end"]
#: Analysers with fields of their own in events and state; any other goes under `heads`.
DOCUMENTED_HEADS = ("emotion", "authenticity", "identity", "liveness")
#: What the identity analyser says of a face it has judged and found nobody enrolled.
UNKNOWN = "unknown"
#: The documented heads as analysers: what Home Assistant may have entities for.
DOCUMENTED_INFOS = (AnalyserInfo("emotion", FER2013_LABELS),
                    AnalyserInfo("authenticity", AUTHENTICITY_LABELS, "fake"),
                    AnalyserInfo("identity", None),
                    AnalyserInfo("liveness", ("live", "spoof"), "spoof"))
#: What `authenticity.verdict` can say.
Authenticity = Literal["live", "spoof", "undetermined"]


@dataclass(frozen=True)
class StateField:
    """Where an analyser shows in the state payload, and the entity that shows it: `path`
    under `value_json`, the entity's short `key` (part of its unique id), its `name`, and
    whether it is the label (`enum`) or an alarm that its positive label is present."""

    path: str
    key: str
    name: str
    kind: Literal["enum", "alarm", "list", "count"]
    icon: str


def state_fields(info: AnalyserInfo) -> list[StateField]:
    """The wire format's one table of which analyser shows where in the state payload."""
    if info.name == "emotion":
        return [StateField("dominant_emotion", "emotion", "dominant emotion", "enum",
                           "mdi:emoticon-outline")]
    if info.name in ("authenticity", "liveness"):  # one entity, whichever judges
        return [StateField("fake_present", "fake", "fake face", "alarm", "mdi:incognito")]
    if info.name == "identity":
        return [StateField("people", "people", "people", "list", "mdi:account-group"),
                StateField("unknown_faces", "unknown_faces", "unknown faces", "count",
                           "mdi:account-question")]
    return [StateField(f"heads.{info.name}", f"head_{info.name}", info.name.replace("_", " "),
                       "enum", "mdi:face-recognition")]


#: Home Assistant device-trigger types (the automation editor's "face seen", "spoof").
FACE_SEEN, SPOOF = "face_seen", "spoof"


def trigger_kinds(info: AnalyserInfo, people: Sequence[str]) -> list[tuple[str, str]]:
    """The (type, subtype) device triggers an analyser can fire: every emotion, every enrolled
    person and `unknown`, `spoof` for a fake face; none for a user's own head."""
    if info.name == "emotion":
        return [(FACE_SEEN, label) for label in info.labels or ()]
    if info.name == "identity":
        return [(FACE_SEEN, p) for p in people] + [(FACE_SEEN, UNKNOWN)]
    if info.name in ("authenticity", "liveness"):
        return [(SPOOF, "fake")]
    return []


#: The event entity's attributes: what an automation wants most of an event, as templates
#: over the event payload.
EVENT_ATTRIBUTES = {
    "track_id": "value_json.track_id", "camera": "value_json.camera",
    "emotion": "value_json.emotion.label if value_json.emotion else none",
    "person": "value_json.identity.name if value_json.identity else none",
    "authenticity": "value_json.authenticity.verdict if value_json.authenticity else none"}


def iso_time(unix: float) -> str:
    """UTC ISO 8601 with milliseconds, the form Home Assistant and most tools parse."""
    return datetime.fromtimestamp(unix, tz=UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class HeadResult:
    """What one head says of a track: the label it reports (by its rule: most likely, or the
    positive class at its threshold), that label's smoothed probability, and all of them."""

    label: str
    score: float
    probabilities: dict[str, float]

    @classmethod
    def from_probabilities(cls, labels: Sequence[str], k: int, probs: np.ndarray) -> HeadResult:
        return cls(labels[k], round(float(probs[k]), 4),
                   {lab: round(float(p), 4) for lab, p in zip(labels, probs, strict=True)})

    @classmethod
    def from_verdict(cls, verdict: Verdict) -> HeadResult:
        assert verdict.label is not None
        return cls(verdict.label, verdict.score, dict(verdict.evidence))


#: The emotion head's result keeps its documented name.
EmotionResult = HeadResult


@dataclass(frozen=True)
class AuthenticityResult:
    """Is the face authentic: `verdict` (live, spoof or undetermined, by the rule below) and
    its `evidence` (liveness: blinks, parallax, …); with an owner-trained model also its
    smoothed `label` (real or fake), `score` and `fake_probability`, else null."""

    verdict: Authenticity
    label: str | None = None
    score: float | None = None
    fake_probability: float | None = None
    evidence: dict[str, float] = field(default_factory=dict)

    @classmethod
    def judge(cls, head: HeadResult | None, liveness: Verdict | None
              ) -> AuthenticityResult | None:
        """The one rule (README "Is it a live face?"): spoof when liveness says so or the
        owner's model says fake; live when liveness says so, or, without liveness, when the
        model says real; otherwise undetermined. None when neither runs."""
        if head is None and liveness is None:
            return None
        return cls(authenticity_verdict(head.label if head else None,
                                        liveness.label if liveness else None,
                                        liveness is not None),
                   head.label if head else None, head.score if head else None,
                   head.probabilities["fake"] if head else None,
                   dict(liveness.evidence) if liveness else {})


def authenticity_verdict(model_label: str | None, liveness_label: str | None,
                         liveness_on: bool) -> Authenticity:
    if liveness_label == "spoof" or model_label == "fake":
        return "spoof"
    if liveness_label == "live" or (not liveness_on and model_label == "real"):
        return "live"
    return "undetermined"


@dataclass(frozen=True)
class IdentityResult:
    """Who a track is: `name` once decided (an enrolled person), null while `pending` or when
    it is `unknown` (judged from enough good samples, nobody enrolled); `score` the mean
    cosine similarity to the best match; `samples` the embeddings taken."""

    name: str | None
    score: float | None
    samples: int
    status: Literal["pending", "known", "unknown"]

    @classmethod
    def from_verdict(cls, v: Verdict) -> IdentityResult:
        samples = int(v.evidence.get("samples", 0))
        status: Literal["pending", "known", "unknown"] = (
            "pending" if v.label is None else "unknown" if v.label == UNKNOWN else "known")
        return cls(v.label if status == "known" else None,
                   round(v.score, 4) if samples else None, samples, status)


@dataclass(frozen=True)
class TrackSummary:
    """Carried by `end`: what happened while the face was there. Per head, the label of its
    mean probabilities over the whole track."""

    duration_s: float
    frames: int
    dominant_emotion: str | None
    authenticity: str | None
    #: Heads beyond emotion and authenticity, by name.
    heads: dict[str, str] = field(default_factory=dict)
    #: The name the track was given (null: unknown, undecided, or nobody enrolled).
    identity: str | None = None
    #: The authenticity verdict the track ended with (null when nothing judged it).
    authenticity_verdict: Authenticity | None = None

    @classmethod
    def from_heads(cls, duration_s: float, frames: int, labels: Mapping[str, str],
                   judged: Sequence[str] = ()) -> TrackSummary:
        """`judged`: the analysers that ran on the track (a verdict needs to know whether
        liveness looked, not only what it said)."""
        rest = {k: v for k, v in labels.items() if k not in DOCUMENTED_HEADS}
        name = labels.get("identity")
        verdict = (authenticity_verdict(labels.get("authenticity"), labels.get("liveness"),
                                        "liveness" in judged)
                   if {"authenticity", "liveness"} & set(judged) else None)
        return cls(duration_s, frames, labels.get("emotion"), labels.get("authenticity"), rest,
                   name if name != UNKNOWN else None, verdict)


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
    #: Heads beyond emotion and authenticity, by name (a user's own age or mask model).
    heads: dict[str, HeadResult] = field(default_factory=dict)
    #: Who it is, when known faces are on (null when the identity analyser is off).
    identity: IdentityResult | None = None
    schema_version: int = EVENT_SCHEMA_VERSION

    @classmethod
    def from_verdicts(cls, verdicts: Mapping[str, Verdict], **fields: Any) -> FaceEvent:
        """An event whose analysers' verdicts go where the contract documents them: emotion,
        authenticity and identity in their own fields, every other one under `heads` (those
        with nothing to say yet are left out)."""
        said = {k: HeadResult.from_verdict(v) for k, v in verdicts.items()
                if v.label is not None and k not in ("identity", "liveness")}
        ident = verdicts.get("identity")
        return cls(emotion=said.get("emotion"),
                   authenticity=AuthenticityResult.judge(said.get("authenticity"),
                                                         verdicts.get("liveness")),
                   heads={k: v for k, v in said.items() if k not in DOCUMENTED_HEADS},
                   identity=IdentityResult.from_verdict(ident) if ident else None,
                   **fields)

    def triggered(self) -> dict[str, tuple[str, str, float | None]]:
        """Per analyser, the device trigger (type, subtype) this event's verdict fires and
        its score: the emotion label, the decided name or `unknown`, `spoof` while fake."""
        out: dict[str, tuple[str, str, float | None]] = {}
        if self.emotion is not None:
            out["emotion"] = (FACE_SEEN, self.emotion.label, self.emotion.score)
        ident = self.identity
        if ident is not None and ident.status != "pending":
            out["identity"] = (FACE_SEEN, ident.name or UNKNOWN, ident.score)
        auth = self.authenticity
        if auth is not None and auth.verdict == "spoof":
            out["authenticity"] = (SPOOF, "fake", auth.fake_probability
                                   if auth.fake_probability is not None else 1.0)
        return out

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
    #: Heads beyond emotion and authenticity: the most common label among present faces.
    heads: dict[str, str | None] = field(default_factory=dict)
    #: Enrolled people present now (sorted), and faces judged to be nobody enrolled.
    people: list[str] = field(default_factory=list)
    unknown_faces: int = 0
    schema_version: int = EVENT_SCHEMA_VERSION

    @classmethod
    def from_analysers(cls, device: str, camera: str, faces: int,
                       said: Mapping[str, Sequence[str]], alarms: Mapping[str, bool],
                       updated_at: str) -> CameraState:
        """The state from what each analyser says of the present faces (their labels) and
        whether its alarm (positive label) is present: documented ones in their fields, the
        rest as their most common label (ties broken by name, so it does not flicker)."""
        def common(labels: Sequence[str]) -> str | None:
            counts = Counter(labels)
            return min(counts, key=lambda k: (-counts[k], k)) if counts else None

        names = said.get("identity", [])
        rest = {k: common(v) for k, v in said.items() if k not in DOCUMENTED_HEADS}
        return cls(device, camera, faces, common(said.get("emotion", [])),
                   alarms.get("authenticity", False) or alarms.get("liveness", False),
                   "authenticity" in said or "liveness" in said, updated_at,
                   heads=rest, people=sorted({n for n in names if n != UNKNOWN}),
                   unknown_faces=sum(n == UNKNOWN for n in names))

    def same_as(self, other: CameraState | None) -> bool:
        """Equal but for the time: publish only when something a subscriber sees changed."""
        return other is not None and replace(self, updated_at=other.updated_at) == other

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


@dataclass(frozen=True)
class Snapshot:
    """A JPEG of a newly confirmed face (or its frame), only when the owner enabled it."""

    event_id: str
    track_id: str
    camera: str
    jpeg: bytes


@dataclass(frozen=True)
class CameraHealth:
    """How one camera is doing, in the figures Frigate users read: what the source delivered,
    what was processed and skipped (per second, over the interval), how often it was lost and
    stalled, and how long ago its last frame came."""

    status: str  # streaming | stalled | reconnecting | ended
    camera_fps: float
    process_fps: float
    skipped_fps: float
    reconnects: int
    stalls: int
    seconds_since_frame: float
    #: This camera's own stage means and frame economy over the stats interval (the stats'
    #: top-level figures are the busiest camera's); empty in the live page's 1-s reports.
    latency_ms: dict[str, float] = field(default_factory=dict)
    economy: dict[str, float] = field(default_factory=dict)


class OutputHealth(TypedDict, total=False):
    """An output's part of the health report: the ServiceStats fields it knows (the MQTT
    output its outbox and connection, the live page the connections it turned away)."""

    outbox_depth: int
    events_dropped: int
    mqtt_connected: bool
    web_rejected: int
    outbox_moved_aside: str


@dataclass(frozen=True)
class ServiceStats:
    """Published every `mqtt.stats_interval_s` on `<prefix>/<device>/stats` (retained)."""

    device: str
    time: str
    version: str
    uptime_s: float
    frames_processed: int
    frames_dropped: int
    source_reconnects: int
    fps: float
    latency_ms: dict[str, float]
    models: dict[str, str]
    cpu_temperature_c: float | None
    #: The frame economy over the interval: model runs (detector windows and head
    #: classifications) per frame, detector runs per frame, the share of frames with motion,
    #: and full scans.
    economy: dict[str, float] = field(default_factory=dict)
    outbox_depth: int = 0
    events_dropped: int = 0
    mqtt_connected: bool = False
    #: Connections the live page turned away: failed TLS handshakes, resets, unknown Host
    #: headers, too many pending, too slow to send their headers.
    web_rejected: int = 0
    #: The outbox file that could not be opened and was moved aside at start ("" if none).
    outbox_moved_aside: str = ""
    #: Per camera, by name.
    cameras: dict[str, CameraHealth] = field(default_factory=dict)
    schema_version: int = 1

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


@dataclass(frozen=True)
class FaceView:
    """A face as the live view draws it: its track, box and each head's label and score."""

    track_id: str
    box: tuple[float, float, float, float]
    confirmed: bool
    labels: dict[str, tuple[str, float]]
    #: Some analyser's alarm label (fake, mask, …) is on this face.
    alarm: bool = False


@dataclass(frozen=True)
class FrameView:
    """One processed frame and what the pipeline saw in it, for outputs that show pictures
    (the live page). Built only while such an output wants frames, so it costs nothing when
    nobody watches."""

    image: np.ndarray
    wall: float
    faces: list[FaceView]
    regions: list[tuple[float, float, float, float]]
    motion: list[tuple[float, float, float, float]]
    tiles: list[tuple[float, float, float, float]]
    full_scan: bool
    model_runs: int
    camera: str = ""

