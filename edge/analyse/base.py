"""What an analyser is: a judgement about a face *track*, built from samples of it.

The tracker associates detections with tracks; then each analyser looks at the tracks seen
this frame; then the tracker emits events from the analysers' verdicts. An analyser is shared
by every camera (it holds its model); what it knows of one track lives in a state object it
makes when the track starts and that ends with the track, so nothing needs expiring. It says
when a sample is worth taking (the frame economy, per track) and when it has decided (a name
found, a verdict reached: no more samples).

A classifier head is the simplest analyser: smoothed probabilities over a fixed list of labels.
Identity and liveness are analysers too: judgements over a track's history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

import cv2
import numpy as np

from facelens.edge.detect.base import Box, Detection, crop


@dataclass(frozen=True)
class AnalyserInfo:
    """What the tracker and the publishers know of an analyser (no model, no runtime).

    `labels` is the fixed list of what it can say, or None when its labels are open (names of
    enrolled people change at run time, so discovery cannot list them as options). With a
    `positive` label (binary analysers: fake, mask) that label is an alarm, present or not.
    """

    name: str
    labels: tuple[str, ...] | None
    positive: str | None = None


@dataclass(frozen=True)
class Verdict:
    """What an analyser says of one track now: its label (None: nothing to say yet), the
    score behind it, whether it has decided for good, and its evidence (a head's smoothed
    probabilities, an identity's similarities), which events carry."""

    label: str | None
    score: float
    decided: bool = False
    evidence: dict[str, float] = field(default_factory=dict)


@dataclass
class FaceSample:
    """One track in one frame, as analysers see it: the detection, the frame it came from,
    and quality figures computed only when an analyser asks for them."""

    image: np.ndarray  # the whole BGR frame
    detection: Detection
    margin: float  # the classifiers' crop margin (detector.crop_margin)
    #: Frames the track has been matched in, this one included.
    track_frames: int
    frame_no: int
    #: The frame's time (seconds, the source's clock).
    t: float = 0.0

    @property
    def box(self) -> Box:
        return self.detection.box

    @cached_property
    def crop(self) -> np.ndarray:
        """The face with the classifiers' margin (square, clamped to the frame)."""
        return crop(self.image, self.detection.box, self.margin)

    @cached_property
    def grey(self) -> np.ndarray:
        return cv2.cvtColor(self.crop, cv2.COLOR_BGR2GRAY)

    @property
    def size(self) -> float:
        """The face's smaller side in frame pixels."""
        return min(self.detection.width, self.detection.height)

    @cached_property
    def sharpness(self) -> float:
        """Variance of the Laplacian at a fixed size: blurred or moving faces score low."""
        return float(cv2.Laplacian(cv2.resize(self.grey, (96, 96)), cv2.CV_64F).var())

    @property
    def frontality(self) -> float:
        """1 for a face looking at the camera, towards 0 turned away: how evenly the nose tip
        sits between the eyes (BlazeFace keypoints: right eye, left eye, nose tip, …); 0.5
        when the detector gives no keypoints."""
        kps = self.detection.keypoints
        if len(kps) < 3:
            return 0.5
        (rx, _), (lx, _), (nx, _) = kps[:3]
        span = abs(lx - rx)
        if span < 1:
            return 0.0
        return float(max(0.0, 1 - abs((nx - rx) - (lx - nx)) / span))

    @property
    def quality(self) -> float:
        """Large, sharp and frontal, each in [0, 1], multiplied: what `collect` keeps."""
        return min(self.detection.width, 160) / 160 * min(self.sharpness, 300) / 300 \
            * self.frontality


class Analyser(Protocol):
    """A per-track judgement. One module in `edge/analyse/` and one line in its registry."""

    info: AnalyserInfo
    #: Milliseconds of the last `take` (its model's run), for stats.
    last_latency_ms: float

    def start(self) -> Any:
        """A new track's state (this analyser's alone; it ends with the track)."""
        ...

    def wants(self, state: Any, sample: FaceSample) -> bool:
        """Whether this sample is worth taking (cadence, quality, decided already)."""
        ...

    def take(self, state: Any, sample: FaceSample) -> None:
        """Learn from one sample (runs the model)."""
        ...

    def verdict(self, state: Any) -> Verdict:
        """What it says of the track now."""
        ...

    def summary(self, state: Any) -> str | None:
        """Its label over the whole track, for the `end` event."""
        ...

    def describe(self) -> str:
        """Which model runs where, for `facelens check`, logs and stats."""
        ...
