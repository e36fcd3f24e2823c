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

from facelens.edge.contract import ManifestError
from facelens.edge.runtime.interpreter import open_model
from facelens.edge.runtime.landmarker import FaceLandmarker

log = logging.getLogger(__name__)
MANIFEST = "face_landmark.json"


def open_landmarker(models_dir: str | Path) -> FaceLandmarker | None:
    """The stock landmark model in `models_dir`, or None (and why) when it is not there."""
    try:
        return FaceLandmarker(open_model(Path(models_dir) / MANIFEST, edgetpu="off",
                                         num_threads=2))
    except ManifestError as exc:
        log.warning("no face landmarks (%s): self-blend masks fall back to the ellipse; "
                    "`facelens models fetch` gets the model", exc)
        return None
