"""Does the small model still agree with the big one? And will it run on an Edge TPU?

The TFLite side runs through the device's own code (edge.runtime and edge.contract), so the
report measures exactly what the device will do, quantised input included.
"""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from facelens.edge.contract import preprocess
from facelens.edge.runtime.classifier import Classifier
from facelens.edge.runtime.interpreter import TFLiteModel, import_runtime

#: TFLite builtin ops the Edge TPU compiler can map (Coral's compatibility table). Anything
#: else stays on the CPU and splits the graph; edgetpu_compiler itself is the final word.
EDGETPU_OPS = frozenset({
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEQUANTIZE",
    "EXPAND_DIMS", "FULLY_CONNECTED", "HARD_SWISH", "L2_NORMALIZATION", "LOGISTIC",
    "MAXIMUM", "MAX_POOL_2D", "MEAN", "MINIMUM", "MUL", "PACK", "PAD", "PRELU", "QUANTIZE",
    "REDUCE_MAX", "REDUCE_MIN", "RELU", "RELU6", "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR",
    "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SLICE", "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT",
    "SQUARED_DIFFERENCE", "SQUEEZE", "STRIDED_SLICE", "SUB", "SUM", "TANH", "TRANSPOSE",
    "TRANSPOSE_CONV", "UNIDIRECTIONAL_SEQUENCE_LSTM",
})


def run_tflite(model: TFLiteModel, images: list[np.ndarray]) -> np.ndarray:
    """Each face through the device's own classifier: the model's quantisation on the way
    in, the manifest's activation on the way out — what the device will report."""
    clf = Classifier(model)
    return np.stack([clf.classify(img) for img in images])


def agreement(reference: np.ndarray, candidate: np.ndarray) -> dict:
    return {
        "top1_agreement": round(float(np.mean(reference.argmax(1) == candidate.argmax(1))), 4),
        "mean_abs_prob_diff": round(float(np.mean(np.abs(reference - candidate))), 5),
        "max_abs_prob_diff": round(float(np.max(np.abs(reference - candidate))), 5),
    }


def latency_ms(model: TFLiteModel, image: np.ndarray, runs: int = 50) -> dict:
    tensor = preprocess(image, model.manifest.input, model.quantization)
    for _ in range(5):
        model.run(tensor)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        model.run(tensor)
        times.append((time.perf_counter() - t0) * 1000)
    return {"median": round(float(np.median(times)), 4),
            "p95": round(float(np.percentile(times, 95)), 4)}


def sizes(path: Path) -> dict:
    data = path.read_bytes()
    return {"bytes": len(data), "gzip_bytes": len(gzip.compress(data, compresslevel=9))}


def op_names(model: TFLiteModel) -> list[str]:
    """The model's own ops. A fresh interpreter without default delegates is needed: XNNPACK
    would otherwise have replaced them with one DELEGATE node."""
    mod, _ = import_runtime()
    interp = mod.Interpreter(
        model_path=str(model.path),
        experimental_op_resolver_type=mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    return sorted({d["op_name"] for d in interp._get_ops_details()})


def edgetpu_verdict(model: TFLiteModel) -> dict:
    """Full integer, static shapes, supported ops: the three things the compiler needs."""
    interp = model.interpreter
    float_tensors = sorted({d["name"] for d in interp.get_tensor_details()
                            if np.dtype(d["dtype"]) == np.float32})
    io = [model.input_details, *model.output_details]
    dynamic = [d["name"] for d in io if -1 in list(d.get("shape_signature", d["shape"]))[1:]]
    unsupported = [op for op in op_names(model) if op not in EDGETPU_OPS]
    reasons = []
    if float_tensors:
        reasons.append(f"{len(float_tensors)} float32 tensors: not full-integer (use --quantize "
                       "int8 or uint8)")
    if dynamic:
        reasons.append(f"dynamic shapes in {dynamic}")
    if unsupported:
        reasons.append(f"ops the Edge TPU does not run: {unsupported}")
    return {"compatible": not reasons, "full_integer": not float_tensors,
            "static_shapes": not dynamic, "unsupported_ops": unsupported, "reasons": reasons}


def run_edgetpu_compiler(path: Path, out_dir: Path) -> dict:
    """Compile for the Edge TPU when the compiler is installed; otherwise say how."""
    compiler = shutil.which("edgetpu_compiler")
    if compiler is None:
        return {"ran": False, "how": "edgetpu_compiler is not on the PATH. On an x86_64 "
                "Debian/Ubuntu workstation install the edgetpu-compiler package from Coral's apt "
                f"repository, then run: edgetpu_compiler -s -o {out_dir} {path}"}
    proc = subprocess.run([compiler, "-s", "-o", str(out_dir), str(path)], capture_output=True,
                          text=True, timeout=600)
    text = proc.stdout + proc.stderr
    on_tpu = re.search(r"Number of operations that will run on Edge TPU:\s*(\d+)", text)
    on_cpu = re.search(r"Number of operations that will run on CPU:\s*(\d+)", text)
    return {"ran": True, "returncode": proc.returncode,
            "ops_on_tpu": int(on_tpu.group(1)) if on_tpu else None,
            "ops_on_cpu": int(on_cpu.group(1)) if on_cpu else None, "log": text[-2000:]}
