"""The architectures: the paper's baseline CNN and an edge CNN that aims higher.

`edge` uses only what the Edge TPU runs after int8 conversion (convolutions, depthwise
convolutions — SeparableConv2D becomes both —, batch norm folded into them, ReLU, residual
Add, global average pooling, a dense softmax/sigmoid) and stays under 200 k parameters.
"""

from __future__ import annotations

from facelens.edge.contract import OutputSpec
from facelens.workstation.tfenv import keras


def head(x, output: OutputSpec, labels: tuple[str, ...]):
    """The output layer the manifest's output spec describes: its width and activation."""
    return keras.layers.Dense(output.width(labels), activation=output.activation,
                              name="probabilities")(x)


def paper(input_shape: tuple[int, int, int], output: OutputSpec, labels: tuple[str, ...]):
    """The baseline recipe: convolution, max-pooling, dropout and dense layers."""
    inp = keras.Input(input_shape)
    x = inp
    for filters in (32, 64, 128):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
        x = keras.layers.Dropout(0.25)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(256, activation="relu")(x)
    x = keras.layers.Dropout(0.5)(x)
    return keras.Model(inp, head(x, output, labels), name="paper_cnn")


# BatchNormalization(momentum=0.9): inference uses the moving statistics, and at the default
# 0.99 they need thousands of steps to settle; small datasets and few-shot runs have hundreds.


def _block(x, filters: int):
    residual = keras.layers.Conv2D(filters, 1, strides=2, padding="same", use_bias=False)(x)
    residual = keras.layers.BatchNormalization(momentum=0.9)(residual)
    for i in range(2):
        x = keras.layers.SeparableConv2D(filters, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
        if i == 0:
            x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
    return keras.layers.ReLU()(keras.layers.Add()([x, residual]))


def edge(input_shape: tuple[int, int, int], output: OutputSpec, labels: tuple[str, ...],
         width: int = 32):
    """Depthwise-separable residual blocks with batch norm and global pooling."""
    inp = keras.Input(input_shape)
    x = keras.layers.Conv2D(width // 2, 3, padding="same", use_bias=False)(inp)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    x = keras.layers.ReLU()(x)
    for filters in (width, 2 * width, 4 * width, 8 * width):
        x = _block(x, filters)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.3)(x)
    return keras.Model(inp, head(x, output, labels), name="edge_cnn")


ARCHS = {"paper": paper, "edge": edge}
