"""A classifier is a TFLite model plus its manifest: face crop in, probabilities per label out.

Authenticity and emotion are two instances of the same thing; what differs lives in the
manifest (labels, input size, colour, range, output activation), so a retrained or converted
model drops in without code changes.
"""

from __future__ import annotations

import numpy as np

from facelens.edge.contract import preprocess
from facelens.edge.runtime.interpreter import ModelStage, TFLiteModel


class Classifier(ModelStage):
    def __init__(self, model: TFLiteModel) -> None:
        super().__init__(model)
        self.labels = model.manifest.labels

    def classify(self, face: np.ndarray) -> np.ndarray:
        """Probabilities over `labels` for one BGR face crop."""
        tensor = preprocess(face, self.manifest.input, self.model.quantization)
        return self.manifest.probabilities(self.model.run(tensor)[0])[0]
