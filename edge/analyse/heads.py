"""Classifier heads as analysers: a named model that says something about a face, smoothed
over the track, and the one rule that turns its probabilities into a label.

A head is data: a manifest (labels, input, output activation, positive class) plus a config
entry (which model, which threshold). Emotion and authenticity are two heads like any other;
a user's own age or mask model is a third with no code change. A head samples a track when it
is new, when its box moved, or every `scan.heads_every_frames` frames; it smooths per frame,
not per sample (a head that ran k frames ago weighs the new sample as k frames of it would
have been), so a slower cadence does not slow its response. It never decides for good: faces
change expression.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facelens.edge.analyse.base import AnalyserInfo, FaceSample, Verdict
from facelens.edge.config import Config, model_key
from facelens.edge.detect.base import Box, iou
from facelens.edge.runtime.classifier import Classifier
from facelens.edge.runtime.stock_models import open_configured

#: A box that overlaps the last one sampled at least this much has not moved.
SAME_BOX_IOU = 0.7


@dataclass(frozen=True)
class HeadRule:
    """How a head turns probabilities into a label. A head whose manifest names a positive
    class (binary heads: `fake`, `mask`) says that label when its probability reaches
    `threshold`; every other head says its most likely label."""

    name: str
    labels: tuple[str, ...]
    positive: int | None = None
    threshold: float = 0.5

    def decide(self, probs: np.ndarray) -> int:
        """The index of the label this head reports for these probabilities."""
        if self.positive is not None:
            if probs[self.positive] >= self.threshold:
                return self.positive
            rest = [i for i in range(len(self.labels)) if i != self.positive]
            return max(rest, key=lambda i: probs[i])
        return int(np.argmax(probs))

    @property
    def info(self) -> AnalyserInfo:
        return AnalyserInfo(self.name, self.labels,
                            None if self.positive is None else self.labels[self.positive])


@dataclass
class HeadState:
    """One head's view of one track."""

    smoothed: np.ndarray | None = None
    total: np.ndarray | None = None  # running sum, for the summary
    samples: int = 0
    sampled_at: int = 0  # the track's frame count at the last sample
    box: Box | None = None  # the box last sampled
    frame_no: int = -10**9  # the frame number of the last sample


class HeadAnalyser:
    """A classifier head over a track: smoothed probabilities, the rule's label."""

    def __init__(self, rule: HeadRule, classifier: Classifier | None, *, alpha: float,
                 every: int) -> None:
        self.rule, self.classifier = rule, classifier
        self.info = rule.info
        self.alpha, self.every = alpha, every
        self.last_latency_ms = 0.0

    def start(self) -> HeadState:
        return HeadState()

    def wants(self, state: HeadState, sample: FaceSample) -> bool:
        if state.box is None or sample.frame_no - state.frame_no >= self.every:
            return True
        return iou(sample.box, state.box) < SAME_BOX_IOU

    def probabilities(self, sample: FaceSample) -> np.ndarray:
        assert self.classifier is not None
        probs = self.classifier.classify(sample.crop)
        self.last_latency_ms = self.classifier.last_latency_ms
        return probs

    def take(self, state: HeadState, sample: FaceSample) -> None:
        p = np.asarray(self.probabilities(sample), np.float64)
        state.box, state.frame_no = sample.box, sample.frame_no
        if state.smoothed is None or state.total is None:
            state.smoothed, state.total = p, p.copy()
        else:
            gap = max(1, sample.track_frames - state.sampled_at)
            w = 1 - (1 - self.alpha) ** gap
            state.smoothed = (1 - w) * state.smoothed + w * p
            state.total = state.total + p
        state.samples += 1
        state.sampled_at = sample.track_frames

    def verdict(self, state: HeadState) -> Verdict:
        if state.smoothed is None:
            return Verdict(None, 0.0)
        k = self.rule.decide(state.smoothed)
        return Verdict(self.rule.labels[k], round(float(state.smoothed[k]), 4), False,
                       {lab: round(float(p), 4)
                        for lab, p in zip(self.rule.labels, state.smoothed, strict=True)})

    def summary(self, state: HeadState) -> str | None:
        if state.total is None or not state.samples:
            return None
        return self.rule.labels[self.rule.decide(state.total / state.samples)]

    def describe(self) -> str:
        if self.classifier is None:
            return "(no model)"
        return f"{self.classifier.name} on {self.classifier.backend}"


def build(cfg: Config) -> list[HeadAnalyser]:
    """Every head whose config names a model; its manifest's task must be the head's name."""
    heads = []
    for name, hc in cfg.head_configs().items():
        if hc.model is None:
            continue
        model = open_configured(model_key(name)[1], hc.model, cfg.runtime, task=name)
        m = model.manifest
        heads.append(HeadAnalyser(HeadRule(name, m.labels, m.positive_index, hc.threshold),
                                  Classifier(model), alpha=cfg.tracker.smoothing_alpha,
                                  every=cfg.scan.heads_every_frames))
    return heads
