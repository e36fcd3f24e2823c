"""What a person looks at after training: curves, a confusion matrix, and the numbers."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files, not windows: this runs on servers and in CI
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import (
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)


def metrics(labels: np.ndarray, probs: np.ndarray, classes: tuple[str, ...]) -> dict:
    """Accuracy, macro and per-class precision/recall/F1; ROC AUC for two classes."""
    pred = probs.argmax(1)
    idx = list(range(len(classes)))
    p, r, f, support = precision_recall_fscore_support(labels, pred, labels=idx,
                                                       zero_division=0)
    mp, mr, mf, _ = precision_recall_fscore_support(labels, pred, labels=idx, average="macro",
                                                    zero_division=0)
    out = {
        "samples": len(labels),
        "accuracy": round(float(np.mean(pred == labels)), 4),
        "macro": {"precision": round(float(mp), 4), "recall": round(float(mr), 4),
                  "f1": round(float(mf), 4)},
        "per_class": {c: {"precision": round(float(p[k]), 4), "recall": round(float(r[k]), 4),
                          "f1": round(float(f[k]), 4), "support": int(support[k])}
                      for k, c in enumerate(classes)},
        "confusion_matrix": confusion_matrix(labels, pred, labels=idx).tolist(),
    }
    if len(classes) == 2 and len(np.unique(labels)) == 2:
        out["roc_auc"] = round(float(roc_auc_score(labels, probs[:, 1])), 4)
    return out


def plot_curves(history: dict[str, list[float]], path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", "accuracy"), strict=True):
        for prefix, style in (("", "-"), ("val_", "--")):
            if prefix + key in history:
                ax.plot(range(1, len(history[prefix + key]) + 1), history[prefix + key], style,
                        label=("validation " if prefix else "training ") + key)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_confusion(matrix: list[list[int]], classes: tuple[str, ...], path: Path,
                   title: str) -> Path:
    m = np.array(matrix)
    fig, ax = plt.subplots(figsize=(1.1 * len(classes) + 2, 1.1 * len(classes) + 1.5))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, str(m[i, j]), ha="center", va="center",
                    color="white" if m[i, j] > m.max() / 2 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_json(data: dict, path: Path) -> Path:
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
