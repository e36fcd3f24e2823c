"""A classifier is a TFLite model plus its manifest: face crop in, probabilities per label out.

Authenticity and emotion are two instances of the same thing; what differs lives in the
manifest (labels, input size, colour, range, output activation), so a retrained or converted
model drops in without code changes.
"""

from __future__ import annotations

import numpy as np

from edge.contract import preprocess
from edge.runtime import TFLiteModel


class Classifier:
    def __init__(self, model: TFLiteModel) -> None:
        self.model = model
        self.manifest = model.manifest
        self.labels = model.manifest.labels
        self.backend = model.backend

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def last_latency_ms(self) -> float:
        return self.model.last_latency_ms

    def classify(self, face: np.ndarray) -> np.ndarray:
        """Probabilities over `labels` for one BGR face crop."""
        tensor = preprocess(face, self.manifest.input, self.model.quantization)
        out = self.model.run(tensor)[0].reshape(-1).astype(np.float64)
        activation = self.manifest.output.activation
        if activation == "sigmoid":
            p = float(np.clip(out[0], 0.0, 1.0))
            return np.array([1.0 - p, p])
        if activation == "logits":
            e = np.exp(out - out.max())
            return e / e.sum()
        # softmax: already probabilities, but int8 models round; renormalise so they sum to 1.
        out = np.clip(out, 0.0, None)
        total = out.sum()
        return out / total if total > 0 else np.full(len(out), 1.0 / len(out))
