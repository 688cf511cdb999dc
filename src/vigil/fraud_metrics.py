"""Fraud-detection metrics, defined once for training, the API and monitoring (numpy only).

Definitions follow scikit-learn (AUC ROC, average precision) and the Fraud Detection
Handbook (card precision@k). A transaction is flagged when ``score >= threshold``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray


def _binary_inputs(labels: ArrayLike, scores: ArrayLike) -> tuple[NDArray[np.int8], NDArray]:
    """Validate and convert labels (0/1) and scores to flat arrays of equal length."""
    y = np.asarray(labels).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels ({y.shape[0]}) and scores ({s.shape[0]}) differ in length")
    if y.size == 0:
        raise ValueError("metrics need at least one example")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    return y.astype(np.int8), s


def _require_both_classes(y: NDArray[np.int8], metric: str) -> None:
    if y.min() == y.max():
        raise ValueError(f"{metric} needs at least one fraud and one genuine example")


def _cumulative_counts(y: NDArray[np.int8], s: NDArray) -> tuple[NDArray, NDArray, NDArray]:
    """True/false positives flagged at each distinct score (descending) used as threshold."""
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    # The last position of each run of equal scores: thresholds between distinct values.
    last_of_tie = np.r_[np.flatnonzero(np.diff(s_sorted)), y_sorted.size - 1]
    tps = np.cumsum(y_sorted)[last_of_tie].astype(np.float64)
    fps = (last_of_tie + 1) - tps
    return tps, fps, s_sorted[last_of_tie]


def roc_auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve (ties count one half, as scikit-learn's ``roc_auc_score``)."""
    fpr, tpr = roc_curve(labels, scores)
    return float(np.trapezoid(tpr, fpr))


def average_precision(labels: ArrayLike, scores: ArrayLike) -> float:
    """Average precision: sum over thresholds of (recall step) x precision (scikit-learn's)."""
    precision, recall = precision_recall_curve(labels, scores)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_curve(labels: ArrayLike, scores: ArrayLike) -> tuple[NDArray, NDArray]:
    """False and true positive rates at each distinct threshold, starting at (0, 0)."""
    y, s = _binary_inputs(labels, scores)
    _require_both_classes(y, "ROC curve")
    tps, fps, _ = _cumulative_counts(y, s)
    return np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]]


def precision_recall_curve(labels: ArrayLike, scores: ArrayLike) -> tuple[NDArray, NDArray]:
    """Precision and recall at each distinct threshold, highest threshold first."""
    y, s = _binary_inputs(labels, scores)
    _require_both_classes(y, "precision-recall curve")
    tps, fps, _ = _cumulative_counts(y, s)
    return tps / (tps + fps), tps / tps[-1]


@dataclass(frozen=True)
class InvestigatedDay:
    """One day of card precision@k: the k cards investigated and the day's compromised cards,
    both among the cards not found compromised on an earlier day."""

    day: object
    investigated: NDArray
    compromised: NDArray

    def found(self) -> int:
        """Compromised cards among those investigated."""
        return int(np.isin(self.investigated, self.compromised).sum())


def investigated_cards_per_day(
    days: ArrayLike,
    cards: ArrayLike,
    labels: ArrayLike,
    scores: ArrayLike,
    k: int,
) -> list[InvestigatedDay]:
    """The handbook's daily investigation, in day order.

    Per day: each card gets its max score and max label; the k highest-scoring cards are
    investigated. Cards found compromised on an earlier day are removed from later days.
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    y, s = _binary_inputs(labels, scores)
    day_arr, card_arr = np.asarray(days).ravel(), np.asarray(cards).ravel()
    if day_arr.shape != y.shape or card_arr.shape != y.shape:
        raise ValueError("days, cards, labels and scores must have the same length")
    detected: NDArray = np.array([], dtype=card_arr.dtype)
    per_day = []
    for day in np.unique(day_arr):
        mask = (day_arr == day) & ~np.isin(card_arr, detected)
        day_cards, inverse = np.unique(card_arr[mask], return_inverse=True)
        card_score = np.full(day_cards.size, -np.inf)
        card_label = np.zeros(day_cards.size, dtype=np.int8)
        np.maximum.at(card_score, inverse, s[mask])
        np.maximum.at(card_label, inverse, y[mask])
        top = np.argsort(-card_score, kind="mergesort")[:k]
        per_day.append(InvestigatedDay(day, day_cards[top], day_cards[card_label == 1]))
        detected = np.r_[detected, day_cards[top][card_label[top] == 1]]
    return per_day


def card_precision_at_k_per_day(
    days: ArrayLike,
    cards: ArrayLike,
    labels: ArrayLike,
    scores: ArrayLike,
    k: int,
) -> list[float]:
    """Handbook card precision@k for each day, in day order: (compromised cards among the k
    investigated) / k (see :func:`investigated_cards_per_day`)."""
    return [day.found() / k for day in investigated_cards_per_day(days, cards, labels, scores, k)]


def card_precision_at_k(
    days: ArrayLike, cards: ArrayLike, labels: ArrayLike, scores: ArrayLike, k: int
) -> float:
    """Handbook card precision@k averaged over days (see :func:`card_precision_at_k_per_day`)."""
    return float(np.mean(card_precision_at_k_per_day(days, cards, labels, scores, k)))


@dataclass(frozen=True)
class ThresholdMetrics:
    """Confusion counts and derived figures at one decision threshold."""

    threshold: float
    true_positives: int
    false_positives: int
    false_negatives: int
    precision: float
    recall: float
    expected_cost: float
    expected_cost_per_transaction: float

    def as_dict(self) -> dict[str, float]:
        """Plain floats, for JSON and tracking."""
        return {key: float(value) for key, value in asdict(self).items()}


def threshold_metrics(
    labels: ArrayLike,
    scores: ArrayLike,
    threshold: float,
    cost_missed_fraud: float,
    cost_false_alarm: float,
) -> ThresholdMetrics:
    """Precision, recall and expected cost when flagging ``score >= threshold``."""
    y, s = _binary_inputs(labels, scores)
    flagged = s >= threshold
    tp = int(np.sum(flagged & (y == 1)))
    fp = int(np.sum(flagged & (y == 0)))
    fn = int(np.sum(~flagged & (y == 1)))
    cost = cost_missed_fraud * fn + cost_false_alarm * fp
    return ThresholdMetrics(
        threshold=float(threshold),
        true_positives=tp,
        false_positives=fp,
        false_negatives=fn,
        precision=tp / (tp + fp) if tp + fp else 0.0,
        recall=tp / (tp + fn) if tp + fn else 0.0,
        expected_cost=float(cost),
        expected_cost_per_transaction=float(cost) / y.size,
    )


def expected_cost(
    labels: ArrayLike,
    scores: ArrayLike,
    threshold: float,
    cost_missed_fraud: float,
    cost_false_alarm: float,
) -> float:
    """Total cost ``cost_missed_fraud * FN + cost_false_alarm * FP`` at ``threshold``."""
    return threshold_metrics(
        labels, scores, threshold, cost_missed_fraud, cost_false_alarm
    ).expected_cost


def choose_threshold(
    labels: ArrayLike,
    scores: ArrayLike,
    cost_missed_fraud: float,
    cost_false_alarm: float,
) -> float:
    """The threshold in [0, 1] minimising expected cost on (validation) data.

    Candidates are the observed scores (flag everything at or above) plus 1.0 past the top
    (flag nothing, when the top score is below 1); ties go to the higher threshold.
    """
    y, s = _binary_inputs(labels, scores)
    tps, fps, candidates = _cumulative_counts(y, s)
    costs = cost_missed_fraud * (tps[-1] - tps) + cost_false_alarm * fps
    flag_nothing_cost = cost_missed_fraud * tps[-1]
    best = int(np.argmin(costs))  # first minimum = highest threshold among ties
    if flag_nothing_cost <= costs[best] and candidates[0] < 1.0:
        return 1.0
    return float(np.clip(candidates[best], 0.0, 1.0))


def evaluate_scores(
    days: ArrayLike,
    cards: ArrayLike,
    labels: ArrayLike,
    scores: ArrayLike,
    threshold: float,
    cost_missed_fraud: float,
    cost_false_alarm: float,
    top_k: int,
) -> dict[str, float]:
    """Every headline metric for one scored, labelled set (as stored in ``metrics.json``)."""
    at_threshold = threshold_metrics(labels, scores, threshold, cost_missed_fraud, cost_false_alarm)
    return {
        "auc_roc": roc_auc(labels, scores),
        "average_precision": average_precision(labels, scores),
        "card_precision_at_k": card_precision_at_k(days, cards, labels, scores, top_k),
        "top_k": float(top_k),
        "n_transactions": float(np.asarray(labels).size),
        "n_frauds": float(np.sum(labels)),
        **at_threshold.as_dict(),
    }
