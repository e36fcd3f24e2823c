"""Magnitude pruning with tensorflow-model-optimization, fine-tuned so the model keeps working.

With labels, fine-tuning learns the labels. Without, it distils: the pruned model learns to
reproduce the original model's own outputs on the calibration faces (and augmented variants),
so anyone with a model and a folder of faces can prune it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from facelens.workstation.kerasmodel import loss_for
from facelens.workstation.tfenv import keras, tf, tfmot


class PruneError(ValueError):
    pass


@dataclass(frozen=True)
class PruneResult:
    model: object  # the stripped Keras model, zeros in its kernels
    target: float
    steps: int
    final_loss: float


def check_sparsity(value: float) -> float:
    if not 0.0 < value < 1.0:
        raise PruneError(f"sparsity must be between 0 and 1 (exclusive), got {value}")
    return value


def prune(model, x: np.ndarray, targets: np.ndarray, *, sparsity: float,
          activation: str = "softmax", epochs: int = 12, batch_size: int = 32,
          learning_rate: float = 5e-4, seed: int = 0) -> PruneResult:
    """Prune `model` to `sparsity` while fitting `targets` (one-hot labels or the original
    model's probabilities) on the float inputs `x`; returns the stripped model."""
    check_sparsity(sparsity)
    keras.utils.set_random_seed(seed)
    steps_per_epoch = max(1, math.ceil(len(x) / batch_size))
    steps = steps_per_epoch * epochs
    # The schedule must reach its target before fine-tuning ends, and update more often than
    # the number of steps (frequency >= steps prunes nothing at all).
    end_step = max(1, int(steps * 0.7))
    frequency = max(1, min(100, end_step // 8))
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=sparsity, begin_step=0, end_step=end_step,
        frequency=frequency)
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    # Fine-tuning sets are small: batch statistics from them would overwrite the ones learnt
    # on the full training set. Frozen BatchNormalization runs in inference mode (Keras 2).
    for layer in clone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    try:
        pruned = tfmot.sparsity.keras.prune_low_magnitude(clone, pruning_schedule=schedule)
    except ValueError as exc:
        raise PruneError(f"tfmot cannot prune this model: {exc}") from exc
    pruned.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss_for(activation))
    history = pruned.fit(x, targets.astype(np.float32), batch_size=batch_size, epochs=epochs,
                         shuffle=True, verbose=0,
                         callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    return PruneResult(stripped, sparsity, steps, float(history.history["loss"][-1]))


def teacher_targets(model, x: np.ndarray, activation: str) -> np.ndarray:
    """What the original model says: the targets of distillation."""
    out = model.predict(x, verbose=0, batch_size=64)
    if activation == "logits":
        out = tf.nn.softmax(out).numpy()
    return out.astype(np.float32)
