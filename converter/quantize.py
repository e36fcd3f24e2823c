"""Keras → TFLite in each mode the device can use, with a representative dataset for int8.

| mode    | weights | activations | input/output | runs on |
|---------|---------|-------------|--------------|---------|
| float32 | float32 | float32     | float32      | CPU     |
| float16 | float16 | float32     | float32      | CPU (GPU delegates) |
| dynamic | int8    | float32     | float32      | CPU     |
| int8    | int8    | int8        | int8         | CPU, Edge TPU after edgetpu_compiler |
| uint8   | int8    | int8        | uint8        | as int8; for pipelines that feed raw uint8 |
| qat     | int8 after quantisation-aware fine-tuning on labelled data; int8 I/O |
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Literal, get_args

import numpy as np

from facelens.workstation.kerasmodel import loss_for
from facelens.workstation.tfenv import keras, tf, tfmot

Mode = Literal["float32", "float16", "dynamic", "int8", "uint8", "qat"]
MODES: tuple[str, ...] = get_args(Mode)


class QuantizeError(ValueError):
    pass


def representative(x: np.ndarray, limit: int = 300) -> Callable[[], Iterator[list[np.ndarray]]]:
    """The calibration batches the converter measures activation ranges on."""
    def gen() -> Iterator[list[np.ndarray]]:
        for i in range(min(len(x), limit)):
            yield [x[i:i + 1].astype(np.float32)]
    return gen


def to_tflite(model, mode: Mode, calibration: np.ndarray | None = None, *,
              sparse: bool = False, tflite_runtime_214: bool = False) -> bytes:
    """Convert; `sparse` asks for XNNPACK's sparse kernels (float modes, pruned models);
    `tflite_runtime_214` keeps dense layers per-tensor so tflite-runtime 2.14 can load
    dynamic-range models made by TF 2.21."""
    if mode not in MODES:
        raise QuantizeError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    opts: list = []
    if mode == "float16":
        opts.append(tf.lite.Optimize.DEFAULT)
        conv.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        opts.append(tf.lite.Optimize.DEFAULT)
    elif mode in ("int8", "uint8", "qat"):
        if calibration is None or len(calibration) == 0:
            raise QuantizeError(f"mode {mode} needs calibration images")
        opts.append(tf.lite.Optimize.DEFAULT)
        conv.representative_dataset = representative(calibration)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        io = tf.uint8 if mode == "uint8" else tf.int8
        conv.inference_input_type = io
        conv.inference_output_type = io
    if sparse:
        if mode not in ("float32", "float16"):
            raise QuantizeError("sparse kernels (XNNPACK) apply to float32 and float16 models")
        opts.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    conv.optimizations = opts
    if tflite_runtime_214:
        conv._experimental_disable_per_channel_quantization_for_dense_layers = True
    try:
        return conv.convert()
    except Exception as exc:  # the converter raises ConverterError, ValueError, …
        raise QuantizeError(f"TFLite conversion ({mode}) failed: {str(exc)[:500]}") from exc


def quantization_aware(model, x: np.ndarray, targets: np.ndarray, *, activation: str,
                       epochs: int = 5, batch_size: int = 32, learning_rate: float = 1e-4,
                       seed: int = 0):
    """Fine-tune with fake-quantisation nodes (tfmot), so int8 rounding is learnt around."""
    keras.utils.set_random_seed(seed)
    try:
        qat = tfmot.quantization.keras.quantize_model(model)
    except (ValueError, RuntimeError) as exc:
        raise QuantizeError(f"tfmot cannot make this model quantisation-aware: "
                            f"{str(exc)[:300]}") from exc
    qat.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss_for(activation))
    qat.fit(x, targets.astype(np.float32), batch_size=batch_size, epochs=epochs, verbose=0)
    return qat
