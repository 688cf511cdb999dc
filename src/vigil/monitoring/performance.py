"""Delayed-label performance: stored decisions judged by the labels that arrived since.

Frauds are confirmed days after the payment (chargebacks, analyst verdicts), so the model's
live quality is known only for transactions whose label came back. For those this computes
the shared metrics (:mod:`vigil.fraud_metrics`: AP, CP@k, precision, recall and expected cost of
the decisions actually taken) and the business figures: prevented loss (amounts of blocked
frauds), missed fraud loss (amounts of frauds let through) and false alarms (genuine
payments blocked).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from vigil.config import TrainConfig
from vigil.data.schema import CUSTOMER_ID, TX_AMOUNT, TX_DATETIME, TX_FRAUD
from vigil.fraud_metrics import average_precision, card_precision_at_k, threshold_metrics

SCORE = "score"
LABEL = "label"
PREDICTION_COLUMNS = (TX_DATETIME, CUSTOMER_ID, TX_AMOUNT, SCORE, LABEL, TX_FRAUD)


@dataclass(frozen=True)
class BusinessFigures:
    """Money and alarms of one set of labelled decisions."""

    prevented_loss: float
    missed_fraud_loss: float
    false_alarms: int
    expected_cost: float


@dataclass(frozen=True)
class BusinessTotals:
    """Running totals over every stored decision and label (the counters on ``/metrics``)."""

    flagged_amount: float
    prevented_loss: float
    false_alarms: int
    labels_fraud: int
    labels_legit: int


@dataclass(frozen=True)
class PerformanceReport:
    """Delayed-label performance of one window of transaction time.

    ``average_precision`` and ``card_precision_at_k`` are None when the labelled decisions
    hold no fraud or no genuine payment: they are not defined there.
    """

    window_start: date
    window_end: date
    n_predictions: int
    n_labelled: int
    n_frauds: int
    average_precision: float | None
    card_precision_at_k: float | None
    top_k: int
    precision: float
    recall: float
    business: BusinessFigures
    totals: BusinessTotals | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the performance mart's document)."""
        return asdict(self)


def _check_columns(frame: pd.DataFrame) -> None:
    missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"labelled predictions lack column(s) {missing}")


def business_figures(labelled: pd.DataFrame, costs: TrainConfig) -> BusinessFigures:
    """Prevented and missed fraud amounts, false alarms and expected cost of the decisions."""
    fraud = labelled[TX_FRAUD].to_numpy() == 1
    flagged = labelled[LABEL].to_numpy() == 1
    amounts = labelled[TX_AMOUNT].to_numpy(dtype=np.float64)
    false_alarms = int(np.sum(flagged & ~fraud))
    missed = int(np.sum(~flagged & fraud))
    return BusinessFigures(
        prevented_loss=float(amounts[flagged & fraud].sum()),
        missed_fraud_loss=float(amounts[~flagged & fraud].sum()),
        false_alarms=false_alarms,
        expected_cost=costs.cost_missed_fraud * missed + costs.cost_false_alarm * false_alarms,
    )


def delayed_label_performance(
    predictions: pd.DataFrame,
    window_start: date,
    window_end: date,
    costs: TrainConfig,
    totals: BusinessTotals | None = None,
) -> PerformanceReport:
    """Judge the stored decisions of ``predictions`` (``tx_fraud`` NaN: no label yet)."""
    _check_columns(predictions)
    labelled = predictions[predictions[TX_FRAUD].notna()]
    y = labelled[TX_FRAUD].to_numpy().astype(np.int8)
    has_both = y.size > 0 and y.min() != y.max()
    ap = cp = None
    precision = recall = 0.0
    if y.size:
        # The stored 0/1 decision as the score at threshold 0.5: precision and recall of the
        # decisions actually taken, whichever model version and threshold took each one.
        decided = threshold_metrics(y, labelled[LABEL].to_numpy(), 0.5, 0.0, 0.0)
        precision, recall = decided.precision, decided.recall
    if has_both:
        scores = labelled[SCORE].to_numpy()
        ap = average_precision(y, scores)
        days = labelled[TX_DATETIME].dt.normalize().to_numpy()
        cp = card_precision_at_k(
            days, labelled[CUSTOMER_ID].to_numpy(), y, scores, costs.top_k_cards
        )
    return PerformanceReport(
        window_start=window_start,
        window_end=window_end,
        n_predictions=len(predictions),
        n_labelled=int(y.size),
        n_frauds=int(y.sum()),
        average_precision=ap,
        card_precision_at_k=cp,
        top_k=costs.top_k_cards,
        precision=precision,
        recall=recall,
        business=business_figures(labelled, costs),
        totals=totals,
    )
