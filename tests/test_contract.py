"""The model contract: manifests and the one preprocessing function."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from facelens.edge.contract import (
    InputSpec,
    ManifestError,
    ModelManifest,
    Quantization,
    dequantize,
    preprocess,
)

GREY_64 = InputSpec(height=64, width=64, channels=1, colour="gray", range=(-1.0, 1.0))
RGB_4 = InputSpec(height=4, width=4, channels=3, colour="rgb", range=(0.0, 1.0))


def test_float_input_maps_pixels_linearly_to_the_manifest_range():
    img = np.zeros((64, 64), np.uint8)
    img[:, 32:] = 255
    img[0, 0] = 51
    t = preprocess(img, GREY_64)
    assert t.shape == (1, 64, 64, 1) and t.dtype == np.float32
    assert t[0, 0, 0, 0] == pytest.approx(51 / 127.5 - 1)
    assert t[0, 5, 40, 0] == pytest.approx(1.0)
    assert t[0, 5, 5, 0] == pytest.approx(-1.0)


def test_colour_order_follows_the_manifest():
    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[..., 0] = 255  # pure blue in OpenCV's order
    t = preprocess(bgr, RGB_4)
    assert t[0, 0, 0].tolist() == pytest.approx([0.0, 0.0, 1.0])  # blue is last in RGB
    grey = preprocess(bgr, GREY_64)
    expected = cv2.cvtColor(bgr[:1, :1], cv2.COLOR_BGR2GRAY)[0, 0] / 127.5 - 1
    assert grey[0, 0, 0, 0] == pytest.approx(expected, abs=1e-6)


def test_any_crop_size_becomes_the_model_size():
    crop = np.random.default_rng(0).integers(0, 256, (37, 91, 3), dtype=np.uint8)
    assert preprocess(crop, GREY_64).shape == (1, 64, 64, 1)
    assert preprocess([crop, crop], RGB_4).shape == (2, 4, 4, 3)


@pytest.mark.parametrize("dtype,scale,zero_point", [
    (np.int8, 2 / 255, 0),          # [-1, 1] on int8, as the converter produces
    (np.int8, 1 / 255, -128),       # [0, 1] on int8
    (np.uint8, 2 / 255, 128),       # [-1, 1] on uint8 (Edge TPU style)
    (np.uint8, 0.0078125, 127),
])
def test_integer_inputs_use_the_models_own_quantisation(dtype, scale, zero_point):
    details = {"name": "input", "dtype": dtype, "quantization": (scale, zero_point)}
    quant = Quantization.from_tensor_details(details)
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    spec = InputSpec(height=16, width=16, channels=1, colour="gray", range=(-1.0, 1.0))
    q = preprocess(pixels, spec, quant)
    assert q.dtype == dtype
    real = pixels.astype(np.float64) / 127.5 - 1
    steps = real / scale
    expected = np.clip(np.round(steps) + zero_point, np.iinfo(dtype).min, np.iinfo(dtype).max)
    diff = np.abs(q[0, ..., 0].astype(np.int32) - expected)
    # Exact, except that a value lying on a half step may round either way in float32.
    tie = np.abs(np.abs(steps - np.floor(steps)) - 0.5) < 1e-3
    assert not diff[~tie].any() and diff.max() <= 1
    # Dequantising with the same parameters gives the float input back within half a step.
    back = dequantize(q, details)[0, ..., 0]
    inside = (real >= (np.iinfo(dtype).min - zero_point) * scale) & (
        real <= (np.iinfo(dtype).max - zero_point) * scale)
    assert np.abs(back - real)[inside].max() <= scale / 2 + 1e-6


def test_float_tensor_details_mean_no_quantisation():
    assert Quantization.from_tensor_details({"dtype": np.float32, "quantization": (0.0, 0)}) \
        is None
    with pytest.raises(ManifestError, match="no quantisation scale"):
        Quantization.from_tensor_details({"name": "x", "dtype": np.int8,
                                          "quantization": (0.0, 0)})


def test_non_uint8_pixels_are_refused():
    with pytest.raises(ValueError, match="uint8"):
        preprocess(np.zeros((8, 8), np.float32), GREY_64)


def _manifest_dict(**changes):
    base = {
        "name": "m", "task": "emotion", "file": "m.tflite", "sha256": "0" * 64,
        "labels": ["a", "b"],
        "input": {"height": 8, "width": 8, "channels": 1, "colour": "gray", "range": [0, 1]},
    }
    base.update(changes)
    return base


@pytest.mark.parametrize("changes,needle", [
    ({"input": {"height": 8, "width": 8, "channels": 3, "colour": "gray"}}, "colour"),
    ({"sha256": "xyz"}, "sha256"),
    ({"labels": ["only"]}, "at least 2 labels"),
    ({"task": "face_detection"}, "blazeface"),
    ({"extra": 1}, "extra"),
    ({"input": {"height": 8, "width": 8, "channels": 1, "colour": "gray", "range": [1, 0]}},
     "increasing"),
])
def test_bad_manifests_are_refused_with_the_field_named(tmp_path, changes, needle):
    path = tmp_path / "m.json"
    path.write_text(json.dumps(_manifest_dict(**changes)))
    with pytest.raises(ManifestError, match=needle) as info:
        ModelManifest.load(path)
    assert str(path) in str(info.value)


def test_manifest_round_trips(tmp_path):
    m = ModelManifest.model_validate(_manifest_dict())
    assert ModelManifest.load(m.save(tmp_path / "m.json")) == m


def test_missing_manifest_names_the_path(tmp_path):
    with pytest.raises(ManifestError, match="not found: .*nope.json"):
        ModelManifest.load(tmp_path / "nope.json")


def test_probabilities_read_the_manifest_activation():
    from facelens.edge.contract import OutputSpec

    two, three = ("real", "fake"), ("a", "b", "c")
    sigmoid = OutputSpec(activation="sigmoid")
    assert sigmoid.probabilities(np.array([[0.8]]), two).tolist() == [
        pytest.approx([0.2, 0.8])]
    # The manifest says which label a sigmoid output is the probability of.
    first = OutputSpec(activation="sigmoid", positive="real")
    assert first.probabilities(np.array([[0.8]]), two).tolist() == [pytest.approx([0.8, 0.2])]
    assert first.targets(np.array([0, 1]), two).tolist() == [[1.0], [0.0]]
    assert (sigmoid.width(two), OutputSpec().width(three)) == (1, 3)
    logits = OutputSpec(activation="logits").probabilities(np.array([[0.0, np.log(3.0)]]), two)
    assert logits.tolist() == [pytest.approx([0.25, 0.75])]
    # int8 softmax outputs that do not quite sum to 1 (or dip below 0) are renormalised.
    soft = OutputSpec().probabilities(np.array([[0.5, 0.46, -0.004], [0.0, 0.0, 0.0]]), three)
    assert soft[0].sum() == pytest.approx(1.0) and soft[0].min() >= 0
    assert soft[1].tolist() == pytest.approx([1 / 3] * 3)
