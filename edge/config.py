"""One validated configuration object: a TOML file, overridden by FACELENS_<SECTION>_<KEY>.

Each feature has its own small model (as Frigate does), and the whole tree is validated once at
start, so a typo in a key or a wrong type stops the service with a message that names the key
and where it came from, instead of surfacing hours later as odd behaviour.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import socket
import tomllib
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from facelens.edge.contract import DETECTION_TASK, EMBEDDING_TASK, LANDMARK_TASK
from facelens.edge.errors import DEBUG_ENV, FaceLensError
from facelens.edge.events import DOCUMENTED_HEADS

log = logging.getLogger(__name__)
ENV_PREFIX = "FACELENS_"
#: Sections that are a list of tables ([[cameras]]), set in the file only.
LIST_SECTIONS = frozenset({"cameras"})
#: Variables with the prefix that are not configuration keys.
ENV_NOT_KEYS = frozenset({"FACELENS_CONFIG", DEBUG_ENV})
#: Keys whose values never appear in messages or logs.
SECRET_KEYS = frozenset({"password"})
#: `<key>_file` reads the value of <key> from a file (secrets).
FILE_SUFFIX = "_file"


class ConfigError(FaceLensError, ValueError):
    """The configuration is invalid; the message names the key and where it was set."""

    exit_code = 2
    kind = "configuration error"


def default_state_dir() -> Path:
    """systemd's StateDirectory= when run as the service, else the user's data directory."""
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return Path(state.split(":")[0])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "facelens"


def default_models_dir() -> Path:
    return default_state_dir() / "models"


class _Section(BaseModel):
    # inf and nan pass `gt=0` and then break timers at run time: refused here, by key.
    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)


class _Backoff(_Section):
    """Retry delays that double from `reconnect_min_s` up to `reconnect_max_s`, each drawn
    with jitter (edge.retry). The low cap is what brings a camera or a broker back within
    seconds of its return; one attempt every few seconds costs nothing."""

    reconnect_min_s: float = Field(default=0.5, gt=0, le=3600)
    reconnect_max_s: float = Field(default=4.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _ordered(self):
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError(f"reconnect_min_s ({self.reconnect_min_s:g}) must not exceed "
                             f"reconnect_max_s ({self.reconnect_max_s:g})")
        return self


class SourceConfig(_Backoff):
    """Where frames come from. `uri` picks the source kind (see edge.sources.open_source)."""

    uri: str = "0"
    #: The camera's name in events and topics.
    name: str = Field(default="camera", pattern=r"^[A-Za-z0-9_-]+$")
    width: int = Field(default=640, gt=0)
    height: int = Field(default=480, gt=0)
    #: Frames per second asked of the camera; 0 leaves the camera's default.
    fps: float = Field(default=0, ge=0)
    #: Keep only the newest frame (live cameras) or read every frame in order (files).
    #: None decides by the kind of source.
    latest_only: bool | None = None
    #: Start a video file or image folder again when it ends (demos, soak tests).
    loop: bool = False
    #: A live source that delivers no frame for this long is closed and reopened (a frozen
    #: camera or stream that keeps its connection open but sends nothing).
    stall_s: float = Field(default=5.0, gt=0, le=600)
    #: Network streams: how long opening one may take.
    open_timeout_s: float = Field(default=10.0, gt=0, le=600)
    #: RTSP over TCP (reliable through NAT and Wi-Fi; OpenCV's own default) or UDP.
    rtsp_transport: Literal["tcp", "udp"] = "tcp"


def _check_tiles(v: tuple[int, int]) -> tuple[int, int]:
    if min(v) < 1 or max(v) > 6:
        raise ValueError("tiles must be two whole numbers from 1 to 6 (columns, rows)")
    return v


class DetectorConfig(_Section):
    #: A name in the detectors registry (facelens.edge.detect.DETECTORS).
    kind: str = "blazeface"
    #: A manifest name in the models directory, or a path to a manifest.
    model: str = "blazeface_full_range"
    #: The model for regions around motion and faces (see [scan]); "" = `model`. In a region
    #: faces are large, and "blazeface_short_range" (4x fewer MACs) halves the CPU, but it
    #: loses faces now and then, which splits tracks (benchmarks/README.md): opt-in.
    region_model: str = ""
    min_score: float = Field(default=0.5, gt=0, lt=1)
    nms_iou: float = Field(default=0.3, gt=0, lt=1)
    #: Columns × rows of overlapping tiles run besides the whole frame; [1, 1] = whole frame only.
    #: 3×2 measured best for 25–80 px faces at 640×480 (benchmarks/detector_strategies.py).
    tiles: tuple[int, int] = (3, 2)
    tile_overlap: float = Field(default=0.25, ge=0, lt=0.9)
    min_face_px: int = Field(default=12, ge=1)
    #: Crops for the classifiers grow by this fraction of the box on each side.
    crop_margin: float = Field(default=0.2, ge=0, le=1)

    @field_validator("kind")
    @classmethod
    def _registered(cls, v: str) -> str:
        from facelens.edge.detect import DETECTORS

        if v not in DETECTORS:
            raise ValueError(f"unknown detector {v!r} (known: {', '.join(DETECTORS)})")
        return v

    @field_validator("tiles")
    @classmethod
    def _positive(cls, v: tuple[int, int]) -> tuple[int, int]:
        return _check_tiles(v)


class HeadConfig(_Section):
    """A classifier head: which model, and the threshold of its positive class (two-label
    models; others report their most likely label). Its labels, input and output rules come
    from the model's manifest, whose task must be the head's name."""

    #: Manifest name or path; empty disables the head.
    model: str | None = None
    #: Probability of the positive class (e.g. "fake") at and above which it is reported.
    threshold: float = Field(default=0.5, gt=0, lt=1)

    @field_validator("model", mode="before")
    @classmethod
    def _empty_is_none(cls, v: Any) -> Any:
        return None if v in ("", "none", "off") else v


class MotionConfig(_Section):
    """The motion detector that decides where the face detector looks (see [scan])."""

    #: Off: every frame is a full scan (the whole frame plus tiles), as before.
    enabled: bool = True
    #: Width of the grey copy motion is measured on (its height follows the frame).
    width: int = Field(default=160, ge=32, le=640)
    #: Grey-level difference to the background that counts as change (sensor noise: < 10).
    threshold: int = Field(default=20, ge=1, le=255)
    #: Smallest changed area, in pixels of the grey copy, that counts as motion.
    min_area_px: float = Field(default=6.0, ge=0)
    #: How fast the background learns the scene (slow light drift, moved furniture).
    alpha: float = Field(default=0.05, gt=0, le=1)
    #: How fast the slow background (the room without people) learns what is not moving: a
    #: spot someone just left looks like it again and is not motion (no ghost); 0 = off.
    long_alpha: float = Field(default=0.005, ge=0, le=1)
    #: When this fraction of the frame changes at once (a light switched), re-learn the
    #: background instead of reporting motion everywhere.
    recalibrate_fraction: float = Field(default=0.5, gt=0, le=1)
    #: Areas where motion never counts: polygons of [x, y] frame pixels, e.g.
    #: [[[0, 0], [200, 0], [200, 120], [0, 120]]] for a TV in the top-left corner.
    masks: list[list[tuple[float, float]]] = Field(default_factory=list)


class ScanConfig(_Section):
    """Where the face detector runs: regions around motion and tracked faces, with a full
    scan now and then as the safety net."""

    #: Whole frame plus tiles at start and this often (faces that arrived without motion).
    full_scan_interval_s: float = Field(default=10.0, gt=0)
    #: When nothing moved and no face was tracked since the last full scan, the next one
    #: waits this long instead: a still, empty room is as the last scan saw it, save what
    #: the motion detector cannot see (a face arriving fainter than `motion.threshold`).
    idle_full_scan_interval_s: float = Field(default=60.0, gt=0)
    #: A tracked face that does not move is re-detected in its region this often; keep it
    #: well under tracker.lost_after_s.
    track_refresh_s: float = Field(default=0.5, gt=0)
    #: Largest side of a motion region, in frame pixels: smaller regions give small faces
    #: more of the model's input (240 px puts a 35 px face at 28 px of a 192 px input).
    max_region_px: int = Field(default=240, ge=64)
    #: A tracked face's region is this many times its size (its face lands at 192 / 4 =
    #: 48 px of the model's input).
    track_region_scale: float = Field(default=4.0, ge=1.5, le=10)
    #: Heads classify a face when it is new, when its box moved, or at most this many frames
    #: after they last did; 1 = every frame.
    heads_every_frames: int = Field(default=5, ge=1)
    #: Follow a confirmed face that moved a little without the detector (template matching
    #: where it was), until its next refresh; 0 switches it off. The match it needs (0-1).
    follow_min_score: float = Field(default=0.75, ge=0, le=1)
    #: Analyser samples (model runs on faces) per frame, at most; undecided tracks first.
    #: 0 = no limit.
    samples_per_frame: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _idle_is_longer(self) -> ScanConfig:
        if self.idle_full_scan_interval_s < self.full_scan_interval_s:
            raise ValueError(f"idle_full_scan_interval_s ({self.idle_full_scan_interval_s:g}) "
                             f"must not be shorter than full_scan_interval_s "
                             f"({self.full_scan_interval_s:g})")
        return self


class EmotionConfig(HeadConfig):
    model: str | None = "emotion_mini_xception"


class AuthenticityConfig(HeadConfig):
    pass


class IdentityConfig(_Section):
    """Known faces: who each track is, from the people enrolled with `facelens faces add`.
    Nothing runs while nobody is enrolled."""

    #: The face-embedding model (a manifest name or path); empty switches identity off.
    model: str | None = "mobilefacenet"
    #: The gallery: enrolled people's face embeddings (biometric data: mode 0600, never
    #: published). Default: faces.json in the state directory.
    gallery_path: Path = Field(default_factory=lambda: default_state_dir() / "faces.json")
    #: A name is decided when the mean cosine similarity to that person reaches `threshold`
    #: and beats the runner-up by `margin`, after at least `min_samples` good samples.
    threshold: float = Field(default=0.6, gt=0, lt=1)
    margin: float = Field(default=0.08, ge=0, lt=1)
    min_samples: int = Field(default=3, ge=1, le=50)
    #: `unknown` only after this many good samples matched nobody (never on the first one);
    #: a track still ambiguous after `max_samples` is unknown too.
    unknown_samples: int = Field(default=5, ge=1, le=100)
    max_samples: int = Field(default=15, ge=1, le=500)
    #: A sample is good when the face is this large (smaller side, px), sharp (variance of
    #: the Laplacian at 96 px) and frontal (0-1, from the eye and nose keypoints).
    min_face_px: int = Field(default=48, ge=16)
    min_sharpness: float = Field(default=20.0, ge=0)
    min_frontality: float = Field(default=0.5, ge=0, le=1)
    #: Embed a track at most every this many frames.
    every_frames: int = Field(default=2, ge=1)

    @field_validator("model")
    @classmethod
    def _empty_is_off(cls, v: str | None) -> str | None:
        return v or None

    @model_validator(mode="after")
    def _ordered(self) -> IdentityConfig:
        if not self.min_samples <= self.max_samples or \
                not self.unknown_samples <= self.max_samples:
            raise ValueError("min_samples and unknown_samples must not exceed max_samples")
        return self




class RuntimeConfig(_Section):
    models_dir: Path = Field(default_factory=default_models_dir)
    #: off: CPU only; auto: Edge TPU when its library loads; on: refuse to run without it.
    edgetpu: Literal["off", "auto", "on"] = "auto"
    #: CPU threads per model run and per OpenCV operation. 1: with the frame economy most
    #: runs are one small region and most images small, where a second thread saves little
    #: time and costs CPU (benchmarks/README.md).
    threads: int = Field(default=1, ge=1, le=16)


class TrackerConfig(_Section):
    iou: float = Field(default=0.3, gt=0, lt=1)
    #: Frames a face must be seen in a row before it becomes a track (`new`).
    confirm_frames: int = Field(default=3, ge=1)
    #: A track not seen for this long ends (`end`).
    lost_after_s: float = Field(default=1.5, gt=0)
    #: At most one `update` per track per this many seconds.
    update_interval_s: float = Field(default=1.0, ge=0)
    #: Weight of the newest frame in each head's exponential moving average of probabilities.
    smoothing_alpha: float = Field(default=0.3, gt=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        """`emotion_alpha` (its name in 0.1) smoothed every head, not only emotion: still read."""
        if isinstance(data, dict) and "emotion_alpha" in data:
            data = dict(data)
            if "smoothing_alpha" in data:
                raise ValueError("set smoothing_alpha only (emotion_alpha is its old name)")
            log.warning("[tracker] emotion_alpha is now called smoothing_alpha")
            data["smoothing_alpha"] = data.pop("emotion_alpha")
        return data


class OutputConfig(_Section):
    #: Write events as JSON lines to standard output.
    stdout: bool = True


class MqttConfig(_Backoff):
    """The broker and the topics. An empty `host` means no MQTT (events go to stdout only)."""

    host: str = ""
    port: int = Field(default=1883, ge=1, le=65535)
    #: Default: facelens-<device_id>. Must be unique per broker.
    client_id: str = ""
    username: str = ""
    #: Set it from a file (`password_file`) or FACELENS_MQTT_PASSWORD(_FILE); never logged.
    password: SecretStr = SecretStr("")
    tls: bool = False
    #: CA bundle to verify the broker with (default: the system's).
    ca_file: Path | None = None
    #: Client certificate and key, for brokers that require them.
    cert_file: Path | None = None
    key_file: Path | None = None
    #: Skip the broker host name check (a self-signed broker on an IP address).
    tls_insecure: bool = False
    keepalive_s: int = Field(default=60, ge=5, le=3600)
    #: MQTT protocol version: "3.1.1" (default, every broker) or "5" (message and session
    #: expiry, reason codes).
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    #: MQTT 5: events and triggers expire at the broker this long after they happened (0:
    #: never); and the session the broker keeps for us across a short disconnection.
    event_expiry_s: float = Field(default=3600, ge=0, le=30 * 86400)
    session_expiry_s: float = Field(default=300, ge=0, le=86400)
    #: QoS of events; state, stats and availability use 1 and are retained where stated.
    qos: Literal[0, 1, 2] = 1
    topic_prefix: str = Field(default="facelens", pattern=r"^[^#+]+$")
    #: Durable outbox (SQLite). Default: outbox.sqlite3 in the state directory
    #: ($STATE_DIRECTORY under systemd, else ~/.local/share/facelens).
    outbox_path: Path = Field(default_factory=lambda: default_state_dir() / "outbox.sqlite3")
    outbox_max_events: int = Field(default=10_000, ge=10)
    outbox_max_age_s: float = Field(default=7 * 86400, gt=0)
    stats_interval_s: float = Field(default=60.0, gt=0)
    #: Publish a JPEG of each new face (`face`) or of its whole frame (`frame`). Off by
    #: default: images stay on the device unless the owner asks.
    snapshots: Literal["off", "face", "frame"] = "off"
    #: Home Assistant MQTT discovery; false removes the entities it created.
    discovery: bool = True
    discovery_prefix: str = Field(default="homeassistant", pattern=r"^[^#+]+$")

    @model_validator(mode="after")
    def _tls_files_exist(self) -> MqttConfig:
        _check_tls_files({"ca_file": self.ca_file, "cert_file": self.cert_file,
                          "key_file": self.key_file})
        return self


def _check_tls_files(files: dict[str, Path | None]) -> None:
    """TLS files must exist, and a certificate comes with its key (both sections' rule)."""
    for name, path in files.items():
        if path is not None and not Path(path).is_file():
            raise ValueError(f"{name} {path} does not exist")
    if (files.get("cert_file") is None) != (files.get("key_file") is None):
        raise ValueError("cert_file and key_file go together")


def split_listen(listen: str) -> tuple[str, int]:
    """`host:port` (IPv6 in brackets) -> (host, port); the one reading of `web.listen`."""
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen {listen!r}: expected host:port, e.g. 127.0.0.1:8080")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebConfig(_Section):
    """The live page (off by default). Anything but loopback needs a password first: the
    page shows the camera."""

    enabled: bool = False
    #: host:port; 127.0.0.1 (default) is reachable only from the device itself (or through
    #: an ssh tunnel); 0.0.0.0 or a LAN address needs `password`.
    listen: str = "127.0.0.1:8080"
    username: str = "facelens"
    #: HTTP Basic password; set it from a file (`password_file`, FACELENS_WEB_PASSWORD_FILE).
    password: SecretStr = SecretStr("")
    #: TLS certificate and key (PEM), for https.
    cert_file: Path | None = None
    key_file: Path | None = None
    #: Frames a viewer is sent per second, at most (each is a JPEG encoded on its thread).
    max_fps: float = Field(default=5.0, gt=0, le=30)
    #: Connections at once (streams, event streams, requests); more get 503.
    max_clients: int = Field(default=4, ge=1, le=64)
    #: Host names the page answers to, besides IP addresses, localhost and this device's
    #: own name (and name.local): e.g. ["camera.example.lan"]. Any other Host header gets
    #: 421, so a DNS-rebinding page in a viewer's browser cannot read the camera.
    hosts: list[str] = Field(default_factory=list)
    #: Connections that have not yet sent a complete, authorised request, at most; and how
    #: long one may take to send its request headers. Past either, it is dropped.
    max_pending: int = Field(default=16, ge=1, le=256)
    header_timeout_s: float = Field(default=10.0, gt=0, le=120)

    @property
    def address(self) -> tuple[str, int]:
        return split_listen(self.listen)

    @model_validator(mode="after")
    def _safe(self) -> WebConfig:
        host, _ = split_listen(self.listen)
        if self.enabled and not is_loopback(host) and not self.password.get_secret_value():
            raise ValueError(f"web.listen = {self.listen!r} can be reached from the network: "
                             "set web.password first (password_file = \"/etc/facelens/"
                             "web-password\" or FACELENS_WEB_PASSWORD_FILE)")
        _check_tls_files({"cert_file": self.cert_file, "key_file": self.key_file})
        return self


class CameraConfig(SourceConfig):
    """One of several cameras ([[cameras]]): a source, and where this camera's view needs
    its own motion masks or scan settings, its own [motion] / [scan] tables (the top-level
    ones otherwise). Everything else (models, outputs) is shared."""

    motion: MotionConfig | None = None
    scan: ScanConfig | None = None
    #: This camera's full-scan tiles (columns, rows) where they differ from [detector]'s:
    #: a wide garden view with small faces needs more than a door camera's close ones.
    tiles: tuple[int, int] | None = None

    @field_validator("tiles")
    @classmethod
    def _tiles(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        return None if v is None else _check_tiles(v)


class LivenessConfig(_Section):
    """Authenticity from the track itself: blinks and the face's 3D shape as it turns, read
    from face landmarks and from the face's own texture followed frame to frame (README "Is
    it a live face?"). Opt-in: measured on renders, not on recorded attacks."""

    enabled: bool = False
    #: The face-landmark model (a manifest name or path).
    model: str = "face_landmark"
    #: Landmarks are read every this many frames while the track is undecided and young
    #: (`young_samples` samples), then every `old_every_frames`; never once decided.
    every_frames: int = Field(default=2, ge=1)
    young_samples: int = Field(default=30, ge=1)
    old_every_frames: int = Field(default=15, ge=1)
    #: At most this many ms of CPU per frame per track being assessed, counted from the
    #: frame it appeared: a sample waits until it fits (its cost estimated from recent
    #: ones). The thread's CPU time: with runtime.threads above 1 the model's helper
    #: threads are not counted. 0 = no budget (the default: sampled less often, fewer
    #: spoofs are caught and more are called live; README "Is it a live face?").
    budget_ms: float = Field(default=0.0, ge=0)
    #: Faces smaller than this (px) are not read: landmark noise would pass for 3D shape.
    min_face_px: int = Field(default=64, ge=16)
    #: Landmarks are compared as the mean of this many samples (noise shrinks by its root).
    smooth_samples: int = Field(default=3, ge=1, le=10)
    #: Live: the landmarks left unexplained by the best plane (a homography), as a share of
    #: the eye distance, at least this in `live_samples` comparisons — or one blink.
    parallax_live: float = Field(default=0.018, gt=0, lt=1)
    live_samples: int = Field(default=3, ge=1)
    #: Spoof: the face's shape changed this much (beyond a similarity: it turned) while a
    #: plane explained it to within `planar_max`, in `spoof_samples` comparisons, no blink.
    moved_min: float = Field(default=0.012, gt=0, lt=1)
    planar_max: float = Field(default=0.009, gt=0, lt=1)
    spoof_samples: int = Field(default=4, ge=1)
    #: A blink: eye openness below `blink_ratio` of the track's usual, for no longer than
    #: `blink_max_s`, then open again.
    blink_ratio: float = Field(default=0.8, gt=0, lt=1)
    blink_max_s: float = Field(default=0.5, gt=0)
    #: Spoof: a frame around the face (a print's or a phone's straight sides): at least
    #: `frame_sides` of the four, both upright ones among them, in `frame_samples` samples,
    #: which moved with the face (by `frame_move_min` face widths or more) more often than
    #: they stayed; 0 = off.
    frame_sides: int = Field(default=3, ge=0, le=4)
    frame_samples: int = Field(default=3, ge=1)
    frame_move_min: float = Field(default=0.03, gt=0, lt=1)
    #: The surface's own texture (edge/analyse/surface_flow.py): corners inside the face
    #: followed frame to frame. Live: what a homography leaves of their motion, as a share
    #: of the face's width, at least `flow_live` in `flow_live_samples` samples. Spoof: they
    #: moved beyond a similarity (it turned) by `flow_moved` while the homography left at
    #: most `flow_planar_ratio` of that, in `flow_spoof_samples` samples. False = off.
    flow: bool = True
    flow_live: float = Field(default=0.004, gt=0, lt=1)
    flow_live_samples: int = Field(default=2, ge=1)
    flow_moved: float = Field(default=0.003, gt=0, lt=1)
    flow_planar_ratio: float = Field(default=0.5, gt=0, lt=1)
    flow_spoof_samples: int = Field(default=3, ge=1)

    @model_validator(mode="after")
    def _plane_below_live(self) -> LivenessConfig:
        if self.planar_max >= self.parallax_live:
            raise ValueError("liveness.planar_max must be below liveness.parallax_live")
        return self


class ServiceConfig(_Section):
    device_id: str = Field(default_factory=lambda: socket.gethostname().split(".")[0] or "facelens",
                           pattern=r"^[A-Za-z0-9_-]+$")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: Stop after this many processed frames (0 = never); for tests and benchmarks.
    max_frames: int = Field(default=0, ge=0)


class Config(_Section):
    source: SourceConfig = Field(default_factory=SourceConfig)
    #: Several cameras, [[cameras]] each; empty: the one camera [source] describes.
    cameras: list[CameraConfig] = Field(default_factory=list)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    emotion: EmotionConfig = Field(default_factory=EmotionConfig)
    authenticity: AuthenticityConfig = Field(default_factory=AuthenticityConfig)
    identity: IdentityConfig = Field(default_factory=IdentityConfig)
    liveness: LivenessConfig = Field(default_factory=LivenessConfig)
    #: More classifier heads, [heads.<name>] each (e.g. [heads.age] model = "my_age").
    heads: dict[str, HeadConfig] = Field(default_factory=dict)
    motion: MotionConfig = Field(default_factory=MotionConfig)
    scan: ScanConfig = Field(default_factory=ScanConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    service: ServiceConfig = Field(default_factory=ServiceConfig)

    @field_validator("heads")
    @classmethod
    def _head_names(cls, heads: dict[str, HeadConfig]) -> dict[str, HeadConfig]:
        for name in heads:
            if name in DOCUMENTED_HEADS:
                raise ValueError(f"head {name!r} has its own [{name}] section")
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise ValueError(f"head name {name!r}: use lower-case letters, digits and _")
        return heads

    @field_validator("cameras")
    @classmethod
    def _cameras_apart(cls, cameras: list[CameraConfig]) -> list[CameraConfig]:
        for key in ("name", "uri"):
            seen: dict[str, int] = {}
            for i, cam in enumerate(cameras):
                value = getattr(cam, key)
                if value in seen:
                    raise ValueError(f"cameras {seen[value] + 1} and {i + 1} have the same "
                                     f"{key} {value!r}: every camera needs its own")
                seen[value] = i
        return cameras

    def camera_configs(self) -> list[Config]:
        """One config per camera, each with its camera as `source` and its own motion, scan
        and tiles where it has them; the one camera of [source] when there is no [[cameras]]."""
        if not self.cameras:
            return [self]
        out = []
        for cam in self.cameras:
            source = SourceConfig(**cam.model_dump(exclude={"motion", "scan", "tiles"}))
            detector = (self.detector if cam.tiles is None
                        else self.detector.model_copy(update={"tiles": cam.tiles}))
            out.append(self.model_copy(update={
                "source": source, "cameras": [], "detector": detector,
                "motion": cam.motion or self.motion, "scan": cam.scan or self.scan}))
        return out

    def head_configs(self) -> dict[str, HeadConfig]:
        """Every head by name, the documented two first, in the order events list them."""
        return {"emotion": self.emotion, "authenticity": self.authenticity, **self.heads}


def model_key(task: str) -> tuple[str, str]:
    """(TOML table, config key) that names the model serving `task`: the detector, one of the
    two documented heads, or a [heads.<task>] table."""
    if task == DETECTION_TASK:
        return "detector", "detector.model"
    if task == EMBEDDING_TASK:
        return "identity", "identity.model"
    if task == LANDMARK_TASK:
        return "liveness", "liveness.model"
    if task in DOCUMENTED_HEADS:
        return task, f"{task}.model"
    return f"heads.{task}", f"heads.{task}.model"


# -- loading -------------------------------------------------------------------------------
def load_config(path: str | Path | None = None, *, environ: dict[str, str] | None = None,
                overrides: dict[str, dict[str, Any]] | None = None) -> Config:
    """Read the TOML file (if any), apply environment variables, then explicit overrides."""
    environ = dict(os.environ if environ is None else environ)
    data: dict[str, Any] = {}
    origin: dict[tuple[str, str], str] = {}
    if path is not None:
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {path}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start})") \
                from exc
        except RecursionError as exc:
            raise ConfigError(f"config file {path} is nested too deeply to be a config") \
                from exc
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {_clip(str(exc))}") \
                from exc
        for section, values in raw.items():
            if section in LIST_SECTIONS and isinstance(values, list):  # [[cameras]]
                data[section] = values
                origin.update({(section, str(i)): f"in {path}" for i in range(len(values))})
                continue
            if not isinstance(values, dict):
                raise ConfigError(f"config key {section!r} in {path}: expected a [{section}] "
                                  "table, got a value")
            data[section] = dict(values)
            origin.update({(section, k): f"in {path}" for k in values})
    for section, values in data.items():
        if section in LIST_SECTIONS:
            continue
        for key in [k for k in values if _is_indirection(section, k)]:
            _read_secret(data, origin, section, key, values.pop(key), f"in {path}")
    for var, value in environ.items():
        if not var.startswith(ENV_PREFIX) or var in ENV_NOT_KEYS:
            continue
        if var.endswith(FILE_SUFFIX.upper()) and _is_secret_file_var(var):
            section, key = _split_env(var[: -len(FILE_SUFFIX)])
            _read_secret(data, origin, section, key, value, f"from environment {var}")
            continue
        section, key = _split_env(var)
        data.setdefault(section, {})[key] = _parse_env_value(section, key, value)
        origin[(section, key)] = f"from environment {var}"
    for section, values in (overrides or {}).items():
        if section in LIST_SECTIONS:
            data[section] = values
            continue
        for key, value in values.items():
            data.setdefault(section, {})[key] = value
            origin[(section, key)] = "from the command line"
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        # The cause kept for --debug is the errors without their inputs: pydantic's own text
        # shows a failing section's whole input, a password read from a file included.
        raise ConfigError(_describe(exc, origin)) from RedactedValidationError(exc)
    except RecursionError as exc:
        raise ConfigError("the configuration is nested too deeply to be a config") from exc


def _is_indirection(section: str, key: str) -> bool:
    """`<key>_file` names a file holding <key>'s value, unless it is a key of its own
    (`cert_file`, `key_file`, `ca_file`: TLS paths, read by the TLS library)."""
    if not key.endswith(FILE_SUFFIX) or section not in Config.model_fields:
        return False
    model = _section_model(section)
    return isinstance(model, type) and issubclass(model, BaseModel) \
        and key not in model.model_fields


def _is_secret_file_var(var: str) -> bool:
    """FACELENS_<SECTION>_<KEY>_FILE, where <KEY> is a key of its own (not e.g. a *_file key)."""
    try:
        _split_env(var[: -len(FILE_SUFFIX)])
    except ConfigError:
        return False
    return True


def _read_secret(data: dict, origin: dict, section: str, key: str, file: Any,
                 where: str) -> None:
    """`<key>_file = PATH` (or FACELENS_<SECTION>_<KEY>_FILE): the value is the file's text,
    so passwords stay out of config files, the environment and `ps` (systemd's
    LoadCredential= puts them in $CREDENTIALS_DIRECTORY)."""
    base = key[: -len(FILE_SUFFIX)] if key.endswith(FILE_SUFFIX) else key
    field = f"{section}.{base}"
    if section not in Config.model_fields or base not in _section_model(section).model_fields:
        raise ConfigError(f"unknown config key '{section}.{key}' {where}: there is no "
                          f"key {field!r} to read from a file")
    try:
        value = Path(str(file)).read_text(encoding="utf-8").strip()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config key '{field}' {where}: secret file {file} is not UTF-8 "
                          "text") from exc
    except OSError as exc:
        raise ConfigError(f"config key '{field}' {where}: cannot read secret file "
                          f"{file}: {exc.strerror}") from exc
    data.setdefault(section, {})[base] = value
    origin[(section, base)] = f"from file {file} ({where})"


def _split_env(var: str) -> tuple[str, str]:
    rest = var[len(ENV_PREFIX):].lower()
    if rest.startswith("heads_"):
        raise ConfigError(f"environment variable {var}: more heads are set in the config "
                          "file, as [heads.<name>] tables")
    for section in sorted(Config.model_fields, key=len, reverse=True):
        if rest.startswith(section + "_"):
            key = rest[len(section) + 1:]
            if key in _section_model(section).model_fields:
                return section, key
            raise ConfigError(f"environment variable {var}: [{section}] has no key {key!r} "
                              f"(known: {', '.join(_section_model(section).model_fields)})")
    raise ConfigError(f"environment variable {var}: no config section matches "
                      f"(sections: {', '.join(Config.model_fields)})")


def _section_model(section: str) -> type[BaseModel]:
    return Config.model_fields[section].annotation  # type: ignore[return-value]


def _parse_env_value(section: str, key: str, value: str) -> Any:
    """Environment values are strings; lists are written as JSON (`[2, 2]`) or `2x2`."""
    annotation = _section_model(section).model_fields[key].annotation
    if get_origin(annotation) in (tuple, list) or annotation in (tuple, list):
        text = value.strip()
        if "x" in text and not text.startswith("["):
            return [p.strip() for p in text.split("x")]
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"environment variable {ENV_PREFIX}{section.upper()}_{key.upper()}"
                              f": expected a list like [2, 2], got {value!r}") from exc
    if type(None) in get_args(annotation) and value.strip() == "":
        return None
    return value


class RedactedValidationError(ValueError):
    """A pydantic ValidationError told without the values that failed (never a secret)."""

    def __init__(self, exc: ValidationError) -> None:
        errors = exc.errors(include_input=False, include_url=False, include_context=False)
        super().__init__(_clip("; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:MAX_ERRORS])))


#: A message names at most this many errors and is cut at MESSAGE_LIMIT characters: a file
#: with half a million unknown keys gets one line, not 75 MB.
MAX_ERRORS = 5
MESSAGE_LIMIT = 2000
VALUE_LIMIT = 80


def _clip(text: str, limit: int = MESSAGE_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(exc: ValidationError, origin: dict[tuple[str, str], str]) -> str:
    lines = []
    errors = exc.errors()
    for err in errors[:MAX_ERRORS]:
        loc = [str(p) for p in err["loc"]]
        key = ".".join(loc)
        if loc[0] == "cameras" and len(loc) >= 2 and loc[1].isdigit():  # 1-based, as read
            key = f"cameras[{int(loc[1]) + 1}]" + "".join(f".{part}" for part in loc[2:])
        where = origin.get((loc[0], loc[1])) if len(loc) >= 2 else None
        if err["type"] == "extra_forbidden":
            known = _known_keys(loc)
            msg = f"unknown config key {key!r}" + (f" (known: {known})" if known else "")
        else:
            secret = loc[-1] in SECRET_KEYS
            got = (f" (got {_clip(repr(err['input']), VALUE_LIMIT)})"
                   if "input" in err and len(loc) >= 2 and not secret else "")
            msg = f"config key {key!r}: {err['msg']}{got}"
        lines.append(_clip(msg, 400) + (f" {where}" if where else ""))
    if len(errors) > MAX_ERRORS:
        lines.append(f"and {len(errors) - MAX_ERRORS} more")
    return _clip("; ".join(lines))


def _known_keys(loc: list[str]) -> str:
    if len(loc) == 1:
        return ", ".join(Config.model_fields)
    if loc[0] == "heads":
        return ", ".join(HeadConfig.model_fields) if len(loc) >= 3 else ""
    if loc[0] == "cameras":
        return ", ".join(CameraConfig.model_fields) if len(loc) == 3 else ""
    if loc[0] in Config.model_fields:
        return ", ".join(_section_model(loc[0]).model_fields)
    return ""
