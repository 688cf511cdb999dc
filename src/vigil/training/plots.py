"""Evaluation plots of one run: ROC, precision-recall, score histogram, training curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vigil.fraud_metrics import precision_recall_curve, roc_curve
from vigil.training.trainer import EpochRecord


def _figure() -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6, 4.5), dpi=100)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    fig.clf()
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def plot_roc(labels: np.ndarray, scores: np.ndarray, auc: float, path: Path) -> Path:
    """ROC curve with the chance diagonal."""
    fpr, tpr = roc_curve(labels, scores)
    fig, ax = _figure()
    ax.plot(fpr, tpr, label=f"AUC ROC = {auc:.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test)")
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_precision_recall(labels: np.ndarray, scores: np.ndarray, ap: float, path: Path) -> Path:
    """Precision-recall curve with the fraud rate as the chance level."""
    precision, recall = precision_recall_curve(labels, scores)
    fig, ax = _figure()
    ax.step(recall, precision, where="post", label=f"AP = {ap:.3f}")
    ax.axhline(float(np.mean(labels)), linestyle="--", color="grey", label="fraud rate")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (test)")
    ax.legend(loc="upper right")
    return _save(fig, path)


def plot_score_histogram(
    labels: np.ndarray, scores: np.ndarray, threshold: float, path: Path
) -> Path:
    """Score distributions of genuine and fraud transactions (log counts) and the threshold."""
    fig, ax = _figure()
    bins = np.linspace(0.0, 1.0, 51)
    ax.hist(scores[labels == 0], bins=bins, alpha=0.6, label="genuine", log=True)
    ax.hist(scores[labels == 1], bins=bins, alpha=0.6, label="fraud", log=True)
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}")
    ax.set(xlabel="fraud score", ylabel="transactions (log)", title="Scores (test)")
    ax.legend()
    return _save(fig, path)


def plot_training_curves(history: Sequence[EpochRecord], path: Path) -> Path:
    """Training/validation loss and validation AP per epoch."""
    fig, ax = _figure()
    epochs = [r.epoch for r in history]
    ax.plot(epochs, [r.train_loss for r in history], label="train loss")
    ax.plot(epochs, [r.validation_loss for r in history], label="validation loss")
    ax.set(xlabel="epoch", ylabel="loss", title="Training curves")
    ap_axis = ax.twinx()
    ap_axis.plot(
        epochs, [r.validation_average_precision for r in history], color="green", label="val AP"
    )
    ap_axis.set_ylabel("validation AP")
    fig.legend(loc="upper center", ncols=3, fontsize="small")
    return _save(fig, path)
