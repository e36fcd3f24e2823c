"""The model contract: what a model file is, and the one way pixels become its input tensor.

Training, the converter and the device all import this module, so a model is always fed
exactly as it was trained: the colour order, size and normalisation come from the model's
manifest, and integer quantisation comes from the model's own tensor details. Nothing here
imports TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from facelens.edge.errors import FaceLensError

MANIFEST_SCHEMA_VERSION = 1

#: The FER-2013 classes, in the dataset's own index order (0 = angry … 6 = neutral).
FER2013_LABELS: tuple[str, ...] = (
    "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral",
)
#: Authenticity labels; `fake` is the positive class (what a sigmoid output gives).
AUTHENTICITY_LABELS: tuple[str, ...] = ("real", "fake")
#: The task of a face detector; every other task names a classifier head (emotion,
#: authenticity, or a user's own, e.g. age or mask).
DETECTION_TASK = "face_detection"
#: The task of a face-landmark model (MediaPipe's face mesh: 468 points per face crop), used
#: on the workstation for self-blend masks and face-swap evaluation.
LANDMARK_TASK = "face_landmarks"
#: The task of a face-embedding model (identity): an aligned face in, a vector out whose
#: cosine similarity to another face's says whether they are the same person.
EMBEDDING_TASK = "face_embedding"
#: Where the eyes, nose tip and mouth centre of an aligned face go, in pixels of a 112×112
#: input: ArcFace's five-point template (InsightFace), with its two mouth corners averaged
#: into the one mouth point BlazeFace gives. Order: the eye on the image's left (the
#: subject's right), the other eye, nose tip, mouth centre.
ALIGNMENT_TEMPLATES: dict[str, np.ndarray] = {
    "arcface_112": np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [56.1396, 92.2848]], np.float32),
}

Colour = Literal["gray", "rgb", "bgr"]
#: A file name with no directory in it: letters, digits, '.', '_' and '-', not starting with
#: a dot, at most 128 characters (a manifest's `name` and `file`).
PLAIN_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class ManifestError(FaceLensError, ValueError):
    """A manifest, or the model file it describes, is not what it should be."""

    exit_code = 3
    kind = "model error"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSpec(_Strict):
    """How the model wants its input: size, colour order and the float range of a pixel."""

    height: int = Field(gt=0)
    width: int = Field(gt=0)
    channels: Literal[1, 3]
    colour: Colour
    #: The float range that pixel values 0…255 map to linearly, e.g. [-1, 1] or [0, 1].
    range: tuple[float, float] = (0.0, 1.0)
    #: The model's fixed batch size (some converted models cannot be resized to 1).
    batch: int = Field(default=1, ge=1, le=16)
    #: How a face is cut out for the model: a square crop of the box ("none"), or warped by
    #: a similarity transform from the detector's keypoints onto a template (face embeddings).
    alignment: Literal["none", "arcface_112"] = "none"

    @field_validator("range")
    @classmethod
    def _increasing(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not v[0] < v[1]:
            raise ValueError(f"range must be increasing, got {list(v)}")
        return v

    def model_post_init(self, __context: object) -> None:
        if (self.colour == "gray") != (self.channels == 1):
            raise ValueError(f"colour {self.colour!r} does not fit channels={self.channels}")

    @property
    def scale(self) -> float:
        return (self.range[1] - self.range[0]) / 255.0

    @property
    def offset(self) -> float:
        return self.range[0]


class AnchorLayer(_Strict):
    """One SSD feature map of a BlazeFace model: its stride and anchors per cell."""

    stride: int = Field(gt=0)
    per_cell: int = Field(gt=0)


class OutputSpec(_Strict):
    """What the output tensor holds, and every rule for reading it: its width, which label is
    the positive class, how raw outputs become probabilities and labels become targets.
    The device, the converter and training all ask here, never decide for themselves."""

    #: softmax: probabilities already; sigmoid: one probability, of the positive label;
    #: logits: apply softmax. Detectors use "blazeface"; landmark models "landmarks"
    #: (x, y, z per point, in input pixels).
    activation: Literal["softmax", "sigmoid", "logits", "blazeface", "landmarks",
                        "embedding"] = "softmax"
    anchors: tuple[AnchorLayer, ...] = ()
    #: Values per face of an embedding output (which FaceLens L2-normalises).
    dims: int = Field(default=0, ge=0)
    #: The positive class of a two-label model: what a sigmoid output is the probability of
    #: and what a head's threshold decides on. Default for two labels: the last one.
    positive: str | None = None

    def width(self, labels: Sequence[str]) -> int:
        """Values per sample in the output tensor."""
        return 1 if self.activation == "sigmoid" else len(labels)

    def positive_index(self, labels: Sequence[str]) -> int | None:
        if self.positive is not None:
            return list(labels).index(self.positive)
        return len(labels) - 1 if len(labels) == 2 else None

    def probabilities(self, outputs: np.ndarray, labels: Sequence[str]) -> np.ndarray:
        """Raw outputs (N×width) as N×len(labels) probabilities.

        sigmoid gives p to the positive label and 1 - p to the other; logits go through
        softmax; softmax outputs are clipped and renormalised, because an int8 model's
        rounded probabilities need not sum to 1.
        """
        out = np.asarray(outputs, np.float64).reshape(len(outputs), -1)
        if self.activation == "sigmoid":
            p = np.clip(out[:, 0], 0.0, 1.0)
            pos = self.positive_index(labels)
            return np.stack([p, 1.0 - p] if pos == 0 else [1.0 - p, p], axis=1)
        if self.activation == "logits":
            e = np.exp(out - out.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        out = np.clip(out, 0.0, None)
        total = out.sum(axis=1, keepdims=True)
        return np.where(total > 0, out / np.where(total > 0, total, 1.0), 1.0 / out.shape[1])

    def targets(self, label_indices: np.ndarray, labels: Sequence[str]) -> np.ndarray:
        """Training targets for class indices, in this output's own form (N×width)."""
        idx = np.asarray(label_indices)
        if self.activation == "sigmoid":
            return (idx == self.positive_index(labels)).astype(np.float32)[:, None]
        return np.eye(len(labels), dtype=np.float32)[idx]


class Provenance(_Strict):
    """Where the file came from, so anyone can fetch and check it again."""

    source: str
    path: str = ""
    notes: str = ""


class ModelManifest(_Strict):
    """The description a model file travels with; `sha256` binds it to one exact file."""

    schema_version: int = MANIFEST_SCHEMA_VERSION
    #: The manifest's own file is <name>.json beside the model: a plain file name, so that
    #: no manifest, however it was made, can point outside the models directory.
    name: str = Field(pattern=PLAIN_NAME)
    #: face_detection, or the name of the classifier head the model serves.
    task: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    #: The model file, beside the manifest: a plain file name too, and not a manifest's.
    file: str = Field(pattern=PLAIN_NAME)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    labels: tuple[str, ...]
    input: InputSpec
    output: OutputSpec = OutputSpec()
    licence: str = ""
    provenance: Provenance | None = None

    @field_validator("name", "file")
    @classmethod
    def _plain(cls, value: str, info) -> str:
        if ".." in value:
            raise ValueError(f"{value!r} is not a plain file name ('..')")
        if info.field_name == "file" and value.lower().endswith((".json", ".part")):
            raise ValueError(f"{value!r}: a model file cannot be named like a manifest "
                             "(.json) or a partial write (.part)")
        return value

    def model_post_init(self, __context: object) -> None:
        out = self.output
        if self.task == DETECTION_TASK:
            if out.activation != "blazeface" or not out.anchors:
                raise ValueError("a face_detection manifest needs output.activation 'blazeface' "
                                 "and its output.anchors")
            return
        if (self.task == EMBEDDING_TASK) != (out.activation == "embedding"):
            raise ValueError("a face_embedding manifest, and only one, has output.activation "
                             "'embedding'")
        if self.task == EMBEDDING_TASK:
            if out.dims < 8 or self.input.alignment == "none":
                raise ValueError("a face_embedding manifest needs output.dims (>= 8) and an "
                                 "input.alignment template")
            return
        if (self.task == LANDMARK_TASK) != (out.activation == "landmarks"):
            raise ValueError("a face_landmarks manifest, and only one, has output.activation "
                             "'landmarks'")
        if self.task == LANDMARK_TASK:
            return
        if out.activation == "blazeface":
            raise ValueError(f"a {self.task} model cannot have a 'blazeface' output")
        if out.activation == "sigmoid" and len(self.labels) != 2:
            raise ValueError("a sigmoid output needs exactly 2 labels")
        if len(self.labels) < 2:
            raise ValueError(f"a {self.task} model needs at least 2 labels")
        if out.positive is not None and (out.positive not in self.labels
                                         or len(self.labels) != 2):
            raise ValueError(f"output.positive {out.positive!r} must be one of exactly two "
                             f"labels, got {list(self.labels)}")
        if self.task == "authenticity" and self.positive_label != "fake":
            raise ValueError("an authenticity model's positive class must be 'fake' (labels "
                             f"{list(self.labels)}, positive {self.positive_label!r})")

    # -- the output rules, for this model's labels -------------------------------------------
    @property
    def output_width(self) -> int:
        return self.output.width(self.labels)

    @property
    def positive_index(self) -> int | None:
        return self.output.positive_index(self.labels)

    @property
    def positive_label(self) -> str | None:
        i = self.positive_index
        return None if i is None else self.labels[i]

    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        return self.output.probabilities(outputs, self.labels)

    # -- files ---------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> ModelManifest:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ManifestError(f"model manifest not found: {path}") from exc
        except (OSError, json.JSONDecodeError) as exc:
            raise ManifestError(f"model manifest {path} is not readable JSON: {exc}") from exc
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ManifestError(f"model manifest {path} is invalid: {_first_error(exc)}") from exc

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.model_dump_json(indent=2, exclude_none=True) + "\n")
        return path

    def model_path(self, manifest_path: str | Path) -> Path:
        """The model file, which lives beside its manifest."""
        return Path(manifest_path).parent / self.file

    def verify_file(self, model_path: str | Path) -> None:
        """Refuse a model file that is missing or not the one this manifest describes."""
        model_path = Path(model_path)
        if not model_path.is_file():
            raise ManifestError(f"model file not found: {model_path} (manifest {self.name!r})")
        digest = sha256_file(model_path)
        if digest != self.sha256:
            raise ManifestError(
                f"model file {model_path} has sha256 {digest}, but manifest {self.name!r} "
                f"expects {self.sha256}: the file is corrupt or not the model described"
            )


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    return f"{loc}: {err['msg']}"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -- preprocessing ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Quantization:
    """An integer input tensor's affine mapping, as the model itself declares it."""

    dtype: np.dtype
    scale: float
    zero_point: int

    @classmethod
    def from_tensor_details(cls, details: dict) -> Quantization | None:
        """Read quantisation from an interpreter's input detail; None for float inputs."""
        dtype = np.dtype(details["dtype"])
        if dtype.kind == "f":
            return None
        scale, zero_point = details["quantization"]
        if not scale:
            raise ManifestError(f"integer input tensor {details.get('name')!r} has no "
                                "quantisation scale")
        return cls(dtype=dtype, scale=float(scale), zero_point=int(zero_point))


def convert_colour(image: np.ndarray, colour: Colour) -> np.ndarray:
    """Turn an OpenCV image (BGR, BGRA or grey) into the model's colour order."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        if colour == "gray":
            return image
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB if colour == "rgb" else cv2.COLOR_GRAY2BGR)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected an H×W grey or H×W×3 BGR image, got shape {image.shape}")
    if image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if colour == "gray":
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if colour == "rgb":
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize with area averaging when shrinking (no aliasing) and bilinear when growing."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrinking = image.shape[1] > width or image.shape[0] > height
    return cv2.resize(image, (width, height),
                      interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def normalize(pixels: np.ndarray, spec: InputSpec, quant: Quantization | None = None) -> np.ndarray:
    """Map uint8 pixels (N×H×W×C) to the model's float range, then to its integer type if any."""
    values = pixels.astype(np.float32) * np.float32(spec.scale) + np.float32(spec.offset)
    if quant is None:
        return values
    info = np.iinfo(quant.dtype)
    q = np.round(values / np.float32(quant.scale)) + quant.zero_point
    return np.clip(q, info.min, info.max).astype(quant.dtype)


def to_pixels(images: Sequence[np.ndarray] | np.ndarray, spec: InputSpec) -> np.ndarray:
    """Colour-convert and resize images to an N×H×W×C uint8 batch of the model's shape."""
    if isinstance(images, np.ndarray) and images.ndim in (2, 3) and not (
        images.ndim == 3 and images.shape[2] not in (1, 3, 4)
    ):
        images = [images]
    out = np.empty((len(images), spec.height, spec.width, spec.channels), np.uint8)
    for i, img in enumerate(images):
        if img.dtype != np.uint8:
            raise ValueError(f"expected uint8 pixels, got {img.dtype} (image {i})")
        px = resize(convert_colour(img, spec.colour), spec.width, spec.height)
        out[i] = px.reshape(spec.height, spec.width, spec.channels)
    return out


def preprocess(images: Sequence[np.ndarray] | np.ndarray, spec: InputSpec,
               quant: Quantization | None = None) -> np.ndarray:
    """Turn face crops (OpenCV BGR or grey, any size) into exactly the model's input tensor.

    One image gives a batch of one. This is the function training, conversion calibration and
    the device share; anything that feeds a model goes through it.
    """
    return normalize(to_pixels(images, spec), spec, quant)


def align(image: np.ndarray, keypoints: Sequence[tuple[float, float]],
          spec: InputSpec) -> np.ndarray:
    """The face warped onto the manifest's template by a similarity transform (rotation,
    uniform scale, shift) fitted to BlazeFace's eyes, nose tip and mouth: a spec.width ×
    spec.height BGR image, in the frame's own colours (preprocess converts them)."""
    if spec.alignment == "none":
        raise ValueError("this model takes unaligned crops (input.alignment 'none')")
    if len(keypoints) < 4:
        raise ValueError(f"alignment needs eyes, nose and mouth keypoints, got {len(keypoints)}")
    template = ALIGNMENT_TEMPLATES[spec.alignment] * np.array(
        [spec.width / 112.0, spec.height / 112.0], np.float32)
    src = np.asarray(keypoints[:4], np.float32)
    if src[0, 0] > src[1, 0]:  # the template's first eye is the one on the image's left
        src[[0, 1]] = src[[1, 0]]
    matrix, _ = cv2.estimateAffinePartial2D(src, template, method=cv2.LMEDS)
    if matrix is None:
        raise ValueError("keypoints too degenerate to align the face")
    return cv2.warpAffine(image, matrix, (spec.width, spec.height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def unit_rows(values: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (an embedding's cosine similarity is then a dot)."""
    v = np.asarray(values, np.float32).reshape(len(values), -1)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def dequantize(values: np.ndarray, details: dict) -> np.ndarray:
    """Turn an output tensor back into floats using its own quantisation parameters."""
    if np.dtype(details["dtype"]).kind == "f":
        return values.astype(np.float32)
    scale, zero_point = details["quantization"]
    return (values.astype(np.float32) - zero_point) * np.float32(scale)
