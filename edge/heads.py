"""Classifier heads: a named model that says something about a face, and the one rule that
turns its probabilities into a label.

A head is data: a manifest (labels, input, output activation, positive class) plus a config
entry (which model, which threshold). Emotion and authenticity are two heads like any other;
a user's own age or mask model is a third with no code change. The tracker smooths each
head's probabilities per track and asks the head's rule for the label; events, state, stats
and Home Assistant discovery carry every head under its name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from facelens.edge.classify import Classifier


@dataclass(frozen=True)
class HeadRule:
    """What the tracker and the publishers need to know of a head (no model, no runtime).

    A head whose manifest names a positive class (binary heads: `fake`, `mask`) says that
    label when its probability reaches `threshold`; every other head says its most likely
    label.
    """

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
    def positive_label(self) -> str | None:
        return None if self.positive is None else self.labels[self.positive]


@dataclass(frozen=True)
class Head:
    """A head with its model: classifies face crops."""

    rule: HeadRule
    classifier: Classifier

    @property
    def name(self) -> str:
        return self.rule.name

    def describe(self) -> str:
        return f"{self.classifier.name} on {self.classifier.backend}"


def rules(heads: Sequence[Head]) -> tuple[HeadRule, ...]:
    return tuple(h.rule for h in heads)
