"""Small Keras models of the three families the converter must handle, trained for a few
seconds on generated faces-sized images with a learnable signal (so their outputs are
confident and agreement means something)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facelens.edge.contract import InputSpec, ModelManifest, preprocess
from facelens.workstation.tfenv import keras

LABELS = ("top", "middle", "bottom")
SIDE = 32


def blob_images(n: int, seed: int, colour: bool = False) -> tuple[list[np.ndarray], np.ndarray]:
    """Class k has a bright blob in the k-th third (top to bottom) of the image, anywhere
    across: mirroring, which the converter's augmentation does, keeps the class."""
    rng = np.random.default_rng(seed)
    images, labels = [], rng.integers(0, 3, n)
    for k in labels:
        img = rng.integers(20, 90, (SIDE, SIDE), dtype=np.uint8)
        y = int(k * SIDE / 3 + rng.integers(2, SIDE // 3 - 6))
        x = int(rng.integers(2, SIDE - 8))
        cv2.circle(img, (x + 3, y + 3), 3 + int(rng.integers(0, 2)), 230, -1)
        images.append(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if colour else img)
    return images, labels


# BatchNormalization(momentum=0.9): with a few hundred training steps the default 0.99 leaves
# the moving statistics (used at inference) far from the batch ones, and the model is
# perfect in training and at chance afterwards.


def plain(channels: int):
    inp = keras.Input((SIDE, SIDE, channels))
    x = keras.layers.Conv2D(8, 3, activation="relu", padding="same")(inp)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, activation="relu", padding="same")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Dropout(0.1)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))


def mobilenet(channels: int):
    inp = keras.Input((SIDE, SIDE, channels))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(inp)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    x = keras.layers.ReLU(6.0)(x)
    for filters in (16, 32):
        x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
        x = keras.layers.ReLU(6.0)(x)
        x = keras.layers.Conv2D(filters, 1, use_bias=False)(x)
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
        x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))


def xception(channels: int):
    """The mini-Xception pattern: separable convolutions, batch norm, residual adds."""
    inp = keras.Input((SIDE, SIDE, channels))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inp)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    x = keras.layers.Activation("relu")(x)
    for filters in (16, 32):
        residual = keras.layers.Conv2D(filters, 1, strides=2, padding="same",
                                       use_bias=False)(x)
        residual = keras.layers.BatchNormalization(momentum=0.9)(residual)
        x = keras.layers.SeparableConv2D(filters, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
        x = keras.layers.Activation("relu")(x)
        x = keras.layers.SeparableConv2D(filters, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
        x = keras.layers.Add()([x, residual])
    x = keras.layers.Conv2D(3, 3, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Activation("softmax")(x))


FAMILIES = {
    "plain": (plain, InputSpec(height=SIDE, width=SIDE, channels=1, colour="gray",
                               range=(0.0, 1.0))),
    "mobilenet": (mobilenet, InputSpec(height=SIDE, width=SIDE, channels=3, colour="rgb",
                                       range=(-1.0, 1.0))),
    "xception": (xception, InputSpec(height=SIDE, width=SIDE, channels=1, colour="gray",
                                     range=(-1.0, 1.0))),
}


def trained(family: str, folder: Path, epochs: int = 8) -> tuple[Path, ModelManifest]:
    """Build, train and save a family's model as .keras with its manifest beside it."""
    build, spec = FAMILIES[family]
    keras.utils.set_random_seed(1)
    model = build(spec.channels)
    images, labels = blob_images(600, seed=1, colour=spec.channels == 3)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(preprocess(images, spec), labels, epochs=epochs, batch_size=32, verbose=0)
    path = folder / f"{family}.h5"
    model.save(path)
    manifest = ModelManifest(name=family, task="emotion", file=path.name, sha256="0" * 64,
                             labels=LABELS, input=spec)
    manifest.save(folder / f"{family}.json")
    return path, manifest


def calibration_folder(folder: Path, colour: bool, n: int = 60, labelled: bool = False) -> Path:
    images, labels = blob_images(n, seed=99, colour=colour)
    folder.mkdir(parents=True, exist_ok=True)
    for i, (img, k) in enumerate(zip(images, labels, strict=True)):
        target = folder / LABELS[k] if labelled else folder
        target.mkdir(exist_ok=True)
        cv2.imwrite(str(target / f"img{i:03d}.png"), img)
    return folder
