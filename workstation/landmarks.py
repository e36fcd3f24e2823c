"""Face landmarks on the workstation: MediaPipe's face mesh (468 points) for a face crop.

Self-blending uses their hull as the blend mask, as the SBI paper does, and the face-swap
evaluation warps one face onto another along them. The model is a stock model like the
others (`facelens models fetch`, sha256-verified) and runs through the device's runtime and
the one preprocessing function; a crop where the model sees no face gets None, and callers
fall back (the ellipse mask).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from facelens.edge.contract import ManifestError, preprocess
from facelens.edge.runtime.interpreter import TFLiteModel, open_model

log = logging.getLogger(__name__)
MANIFEST = "face_landmark.json"


class FaceLandmarker:
    def __init__(self, model: TFLiteModel) -> None:
        self.model = model
        outs = model.output_details
        self._points = max(range(len(outs)), key=lambda i: int(np.prod(outs[i]["shape"])))
        self._flag = 1 - self._points if len(outs) == 2 else None

    @classmethod
    def open(cls, models_dir: str | Path) -> FaceLandmarker | None:
        """The stock landmark model in `models_dir`, or None (and why) when it is not there."""
        try:
            return cls(open_model(Path(models_dir) / MANIFEST, edgetpu="off", num_threads=2))
        except ManifestError as exc:
            log.warning("no face landmarks (%s): self-blend masks fall back to the ellipse; "
                        "`facelens models fetch` gets the model", exc)
            return None

    def points(self, face: np.ndarray) -> np.ndarray | None:
        """468×2 (x, y) in the crop's pixels, or None when the model sees no face in it."""
        spec = self.model.manifest.input
        outs = self.model.run(preprocess(face, spec, self.model.quantization))
        if self._flag is not None and float(np.ravel(outs[self._flag])[0]) < 0:
            return None
        pts = np.asarray(outs[self._points], np.float32).reshape(-1, 3)[:, :2]
        h, w = face.shape[:2]
        return pts * np.array([w / spec.width, h / spec.height], np.float32)
