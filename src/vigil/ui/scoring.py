"""In-process scoring for the UI: one transaction with online features, or a simulated world."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vigil.config import DataConfig, Settings
from vigil.data import schema
from vigil.data.simulate import simulate_transactions
from vigil.features import OnlineFeatureComputer
from vigil.features import Transaction as OnlineTransaction
from vigil.features.offline import compute_features_frame
from vigil.inference.decision import Decision, decide, label_scores
from vigil.inference.errors import InvalidFeaturesError
from vigil.inference.scorer import OnnxScorer
from vigil.metrics import ThresholdMetrics, threshold_metrics
from vigil.predict import feature_matrix, score_in_chunks
from vigil.serving.schemas import Transaction

logger = logging.getLogger(__name__)

SCORE = "score"
LABEL = "label"


def model_order(names: Sequence[str], vector: np.ndarray, scorer: OnnxScorer) -> np.ndarray:
    """A feature vector [F] named ``names`` rearranged into the model's order, as [1, F]."""
    by_name = dict(zip(names, vector.tolist(), strict=True))
    missing = [name for name in scorer.feature_names if name not in by_name]
    if missing:
        raise InvalidFeaturesError(
            f"model {scorer.model_version} needs feature(s) the configuration does not "
            f"compute: {missing}"
        )
    return np.asarray([[by_name[name] for name in scorer.feature_names]], dtype=np.float32)


def score_transaction(
    scorer: OnnxScorer,
    computer: OnlineFeatureComputer,
    transaction: Transaction,
    reason_codes: int,
) -> Decision:
    """Online features (updating ``computer``'s state) and the model's decision, explained."""
    online = OnlineTransaction(
        transaction.transaction_id,
        transaction.tx_datetime,
        transaction.customer_id,
        transaction.terminal_id,
        transaction.tx_amount,
    )
    vector = model_order(computer.names, computer.features_for(online), scorer)
    (decision,) = decide(scorer, [transaction.transaction_id], vector, reason_codes, "all")
    return decision


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


def simulate_and_score(settings: Settings, scorer: OnnxScorer, data: DataConfig) -> ScoredWorld:
    """Simulate ``data``'s world, compute offline features and score every transaction."""
    transactions = simulate_transactions(data)
    if transactions.empty:
        raise ValueError("the simulated world has no transactions: add customers or days")
    features = compute_features_frame(settings.features, transactions)
    features = features.set_index(schema.TRANSACTION_ID).loc[transactions[schema.TRANSACTION_ID]]
    matrix = feature_matrix(features.reset_index(), scorer.feature_names)
    scores = score_in_chunks(scorer, matrix, settings.inference.batch_size, progress=False)
    frame = transactions.assign(
        **{SCORE: scores, LABEL: label_scores(scores, scorer.metadata.threshold)}
    )
    quality = threshold_metrics(
        frame[schema.TX_FRAUD].to_numpy(),
        scores,
        scorer.metadata.threshold,
        settings.train.cost_missed_fraud,
        settings.train.cost_false_alarm,
    )
    logger.info("scored %d simulated transactions with %s", len(frame), scorer.model_version)
    return ScoredWorld(frame=frame, model_version=scorer.model_version, quality=quality)
