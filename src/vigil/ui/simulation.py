"""The Simulate page's work: a simulated world scored by the API's ``POST /evaluate``."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vigil.config import DataConfig, Settings
from vigil.data import schema
from vigil.data.simulate import simulate_transactions
from vigil.fraud_metrics import ThresholdMetrics, threshold_metrics
from vigil.ui.client import ApiClient

logger = logging.getLogger(__name__)

SCORE = "score"
LABEL = "label"
UPLOAD_COLUMNS = (*schema.TRANSACTION_COLUMNS, schema.TX_FRAUD)


@dataclass(frozen=True)
class ScoredWorld:
    """A simulated world's transactions with the model's scores and labels."""

    frame: pd.DataFrame
    model_version: str
    quality: ThresholdMetrics

    @property
    def fraud_rate(self) -> float:
        """Share of simulated transactions that are fraud."""
        return float(self.frame[schema.TX_FRAUD].mean()) if len(self.frame) else 0.0

    @property
    def flagged_rate(self) -> float:
        """Share of transactions the model flags."""
        return float(self.frame[LABEL].mean()) if len(self.frame) else 0.0

    @property
    def flagged_amount(self) -> float:
        """Total amount of the flagged transactions."""
        return float(self.frame.loc[self.frame[LABEL] == 1, schema.TX_AMOUNT].sum())

    @property
    def fraud_amount_caught(self) -> float:
        """Total amount of the frauds the model flags."""
        caught = (self.frame[LABEL] == 1) & (self.frame[schema.TX_FRAUD] == 1)
        return float(self.frame.loc[caught, schema.TX_AMOUNT].sum())


def simulate_and_score(settings: Settings, api: ApiClient, data: DataConfig) -> ScoredWorld:
    """Simulate ``data``'s world and have the API score and measure every transaction.

    ``POST /evaluate`` computes the offline features over the uploaded world and stores
    nothing; the expected cost uses the training metric code with the configured costs.
    """
    transactions = simulate_transactions(data)
    if transactions.empty:
        raise ValueError("the simulated world has no transactions: add customers or days")
    evaluated = api.evaluate(transactions, UPLOAD_COLUMNS)
    scores = np.fromiter((p.score for p in evaluated.predictions), np.float64)
    frame = transactions.copy()
    frame[SCORE] = scores
    frame[LABEL] = [p.label for p in evaluated.predictions]
    threshold = evaluated.predictions[0].threshold
    quality = threshold_metrics(
        frame[schema.TX_FRAUD].to_numpy(),
        scores,
        threshold,
        settings.train.cost_missed_fraud,
        settings.train.cost_false_alarm,
    )
    logger.info("scored %d simulated transactions with %s", len(frame), evaluated.model_version)
    return ScoredWorld(frame=frame, model_version=evaluated.model_version, quality=quality)
