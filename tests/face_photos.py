"""Photos of real people, several of one person: the test images face_recognition 1.3.0
ships in its PyPI sdist (three photos of Barack Obama, one of Joe Biden, official portraits),
fetched once by pip by pinned version and verified by sha256, cached with the model wheels.
Used by the known-faces tests (enrolment and the chain); the face boxes come from the real
detector, so nothing is measured by hand."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np

SDIST = "face_recognition-1.3.0.tar.gz"
SDIST_SHA256 = "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec"
IMAGES = ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg")


def photos(cache: Path) -> dict[str, Path]:
    """The images by file name, extracted into `cache`/face_photos."""
    out = cache / "face_photos"
    if all((out / n).is_file() for n in IMAGES):
        return {n: out / n for n in IMAGES}
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    sdist = wheels / SDIST
    if not sdist.is_file():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary",
                        ":all:", "--quiet", "-d", str(wheels), "face_recognition==1.3.0"],
                       check=True, timeout=300)
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise RuntimeError(f"{sdist} has sha256 {digest}, expected {SDIST_SHA256}")
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist) as tf:
        for n in IMAGES:
            member = tf.extractfile(f"face_recognition-1.3.0/tests/test_images/{n}")
            assert member is not None
            (out / n).write_bytes(member.read())
    return {n: out / n for n in IMAGES}


def read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, path
    return image
