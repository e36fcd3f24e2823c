"""A face embedder: an embedding model plus its manifest, aligned face in, unit vector out.

The face is warped onto the manifest's template from the detector's keypoints (alignment is
what makes two photos of one person land close: naive centre crops separated same from
different people with a ROC AUC of only 0.80 here), then fed with its mirror image; the two
embeddings are averaged. The cosine similarity of two results (a dot product) says whether
two faces are one person.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facelens.edge.contract import align, preprocess, unit_rows
from facelens.edge.runtime.interpreter import ModelStage, TFLiteModel


class Embedder(ModelStage):
    def __init__(self, model: TFLiteModel) -> None:
        super().__init__(model)
        self.dims = model.manifest.output.dims

    def aligned(self, image: np.ndarray, keypoints: Sequence[tuple[float, float]]) -> np.ndarray:
        return align(image, keypoints, self.manifest.input)

    def embed(self, image: np.ndarray, keypoints: Sequence[tuple[float, float]]) -> np.ndarray:
        """The unit embedding of the face these keypoints mark in `image` (the whole frame)."""
        face = self.aligned(image, keypoints)
        views = [face, face[:, ::-1].copy()]  # the face and its mirror
        batch = self.manifest.input.batch
        tensor = preprocess((views * batch)[:batch] if batch > 1 else views[:1],
                            self.manifest.input, self.model.quantization)
        out = unit_rows(self.model.run(tensor)[0])
        used = min(batch, 2)
        return unit_rows(out[:used].mean(axis=0, keepdims=True))[0]
