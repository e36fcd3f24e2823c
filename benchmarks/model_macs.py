"""Multiply-accumulates per run of each stock model, read from the model's own graph, and what
they make of a frame on a Raspberry Pi — on paper.

    python benchmarks/model_macs.py [--models .cache/models] [--runs-per-frame 0.86]

MACs are counted per convolution, depthwise convolution and fully-connected op from the tensor
shapes the runtime reports (other ops are comparatively free). The Pi estimates scale them by
a published throughput: MobileNet v1 1.0/224 (569 M MACs) in 87 ms on a Pi 4's CPU with
TFLite (dev.to/tildalice, "MobileNet vs EfficientNet-Lite: Pi 4 First Model 38ms Gap"), i.e.
6.5 GMAC/s, and a Pi 5 at 2-3x a Pi 4's CPU (Raspberry Pi's Pi 5 announcement). Small models
run below that efficiency, so these are optimistic bounds: measure on the device.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from facelens.edge.contract import ModelManifest
from facelens.edge.runtime.interpreter import import_runtime

PI4_GMACS = 569e6 / 0.087 / 1e9  # MobileNet v1 on a Pi 4: 6.5 GMAC/s effective
PI5_OVER_PI4 = (2.0, 3.0)


def macs(model_path: Path) -> int:
    interpreter = import_runtime()[0].Interpreter(model_path=str(model_path))
    interpreter.allocate_tensors()
    shapes = {t["index"]: tuple(int(x) for x in t["shape"])
              for t in interpreter.get_tensor_details()}
    total = 0
    for op in interpreter._get_ops_details():
        name, ins, outs = op["op_name"], op["inputs"], op["outputs"]
        if not len(outs) or outs[0] < 0 or len(ins) < 2:
            continue
        out = shapes.get(int(outs[0]), ())
        w = shapes.get(int(ins[1]), ())
        if name == "CONV_2D" and len(w) == 4:
            total += int(np.prod(out)) * w[1] * w[2] * w[3]
        elif name == "DEPTHWISE_CONV_2D" and len(w) == 4:
            total += int(np.prod(out)) * w[1] * w[2]
        elif name == "FULLY_CONNECTED" and len(w) == 2:
            total += int(np.prod(out)) * w[1]
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=".cache/models")
    ap.add_argument("--detector-runs", type=float, default=0.86,
                    help="detector runs per frame (frame_economy.py, motion + regions)")
    ap.add_argument("--head-runs", type=float, default=0.12,
                    help="head runs per frame (frame_economy.py)")
    args = ap.parse_args()
    found = {}
    print("| model | input | M MACs per run | Pi 4 ms per run (bound) | Pi 5 ms per run |")
    print("|---|---|---:|---:|---:|")
    for name in ("blazeface_full_range", "blazeface_short_range", "emotion_mini_xception"):
        m = ModelManifest.load(Path(args.models) / f"{name}.json")
        n = macs(Path(args.models) / m.file)
        found[name] = n
        pi4 = n / (PI4_GMACS * 1e9) * 1000
        print(f"| {name} | {m.input.width}x{m.input.height}x{m.input.channels} | {n / 1e6:.1f} |"
              f" {pi4:.1f} | {pi4 / PI5_OVER_PI4[1]:.1f}-{pi4 / PI5_OVER_PI4[0]:.1f} |")
    det, emo = found["blazeface_full_range"], found["emotion_mini_xception"]
    print("\n| per frame | M MACs | Pi 4 ms | Pi 4 fps at 1 core | Pi 5 ms |")
    print("|---|---:|---:|---:|---:|")
    for label, per_frame in (("full scan every frame (7 detector runs + heads)",
                              7 * det + 1 * emo),
                             ("motion + regions (room video mix)",
                              args.detector_runs * det + args.head_runs * emo),
                             ("empty still room", 0)):
        ms = per_frame / (PI4_GMACS * 1e9) * 1000
        fps = f"{1000 / ms:.0f}" if ms else "camera-bound"
        print(f"| {label} | {per_frame / 1e6:.1f} | {ms:.1f} | {fps} | "
              f"{ms / PI5_OVER_PI4[1]:.1f}-{ms / PI5_OVER_PI4[0]:.1f} |")


if __name__ == "__main__":
    main()
