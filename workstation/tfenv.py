"""Import TensorFlow the one way that works for pruning: Keras 2 (tf_keras), oneDNN off.

tensorflow-model-optimization only understands Keras 2, which TensorFlow 2.21 provides as
`tf_keras` when TF_USE_LEGACY_KERAS=1 is set before TensorFlow is imported; and `fit()` was seen
to segfault on the stock mini-Xception unless TF_ENABLE_ONEDNN_OPTS=0. Both must be set before
the first import anywhere in the process, so every workstation module imports TensorFlow
(and tensorflow-model-optimization, which imports it) through here.
"""

from __future__ import annotations

import os
import sys

if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    raise ImportError("TensorFlow was imported before workstation.tfenv: set "
                      "TF_USE_LEGACY_KERAS=1 and TF_ENABLE_ONEDNN_OPTS=0 first")
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

try:
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot  # imports TensorFlow: only from here
    import tf_keras as keras
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(f"{exc}: install the workstation extras, pip install "
                      "'facelens[convert]' (or [train])") from exc

__all__ = ["keras", "tf", "tfmot"]
