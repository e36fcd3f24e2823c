"""The one set of classification metrics the converter's fidelity report and training's
evaluation share (scikit-learn's): accuracy, per-class and macro precision/recall/F1 over
every class of the model — a class absent from the data counts as 0, so a macro-F1 never
looks better by leaving a class out — the confusion matrix, and ROC AUC for two classes.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score


def classification_metrics(labels: np.ndarray, probs: np.ndarray,
                           classes: tuple[str, ...]) -> dict:
    """Metrics of N×K probabilities `probs` against N true class indices `labels`."""
    labels = np.asarray(labels)
    pred = np.asarray(probs).argmax(1)
    idx = list(range(len(classes)))
    p, r, f, support = precision_recall_fscore_support(labels, pred, labels=idx,
                                                       zero_division=0)
    out: dict = {
        "samples": len(labels),
        "accuracy": round(float(np.mean(pred == labels)), 4),
        "macro": {"precision": round(float(np.mean(p)), 4),
                  "recall": round(float(np.mean(r)), 4), "f1": round(float(np.mean(f)), 4)},
        "per_class": {c: {"precision": round(float(p[k]), 4), "recall": round(float(r[k]), 4),
                          "f1": round(float(f[k]), 4), "support": int(support[k])}
                      for k, c in enumerate(classes)},
        "confusion_matrix": confusion_matrix(labels, pred, labels=idx).tolist(),
    }
    if len(classes) == 2 and len(np.unique(labels)) == 2:
        out["roc_auc"] = round(float(roc_auc_score(labels, np.asarray(probs)[:, 1])), 4)
    return out
