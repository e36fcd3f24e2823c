"""A float .tflite rebuilt in Keras computes what the file computes (the stock face embedder,
and Keras models of every family round-tripped), and what cannot be rebuilt is named."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("facelens.workstation.tfenv")  # sets the TF environment before TF is imported

from facelens.converter.from_tflite import TFLiteImportError, load_tflite_as_keras
from facelens.converter.quantize import to_tflite
from facelens.edge.contract import ModelManifest, align, preprocess
from facelens.workstation.tfenv import keras
from tests import keras_models


def test_the_stock_embedder_rebuilt_embeds_a_real_face_as_the_file_does(models_dir,
                                                                        make_config):
    from ai_edge_litert.interpreter import Interpreter

    from demo.scenes import astronaut
    from facelens.edge.detect import DETECTORS

    path = models_dir / "MobileFaceNet.tflite"
    model = load_tflite_as_keras(path)
    kinds = [type(layer).__name__ for layer in model.layers]
    # Its PReLUs, written out in RELU/ABS/SUB/MUL/ADD ops, come back as PReLU layers.
    assert kinds.count("PReLU") == 33 and kinds.count("Conv2D") == 35
    assert kinds.count("DepthwiseConv2D") == 17 and "Abs" not in kinds
    photo = astronaut()
    face = max(DETECTORS["blazeface"](make_config()).detect(photo.image),
               key=lambda f: f.width)
    spec = ModelManifest.load(models_dir / "mobilefacenet.json").input
    aligned = align(photo.image, face.keypoints, spec)
    x = preprocess([aligned, aligned[:, ::-1]], spec)
    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    want = it.get_tensor(it.get_output_details()[0]["index"])
    got = model.predict(x, verbose=0)
    cos = np.sum(want * got, 1) / np.linalg.norm(want, axis=1) / np.linalg.norm(got, axis=1)
    assert cos.min() > 0.9999


@pytest.mark.parametrize("family", list(keras_models.FAMILIES))
def test_keras_models_round_trip_through_tflite(family, tmp_path):
    build, spec = keras_models.FAMILIES[family]
    keras.utils.set_random_seed(0)
    model = build(spec.channels)
    images, _ = keras_models.blob_images(6, seed=2, colour=spec.channels == 3)
    x = preprocess(images, spec)
    path = tmp_path / f"{family}.tflite"
    path.write_bytes(to_tflite(model, "float32"))
    back = load_tflite_as_keras(path)  # checks itself against the file on random inputs
    assert np.allclose(back.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-4)


def test_what_cannot_be_rebuilt_is_named(tmp_path, models_dir):
    inp = keras.Input((8, 8, 1))
    out = keras.layers.Conv2DTranspose(2, 3)(inp)
    path = tmp_path / "transpose.tflite"
    path.write_bytes(to_tflite(keras.Model(inp, out), "float32"))
    with pytest.raises(TFLiteImportError, match="op TRANSPOSE_CONV .* cannot be rebuilt"):
        load_tflite_as_keras(path)
    with pytest.raises(TFLiteImportError, match="is quantised"):
        load_tflite_as_keras(models_dir / "emotion_model_quantized.tflite")
