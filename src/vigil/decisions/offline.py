"""Decisions without the online state: model-only scoring and scoring a batch on its own.

``/forward`` scores feature values a caller computed; ``/forward_batch`` and ``/evaluate``
compute features over the uploaded batch itself (the offline SQL), so nothing is recorded in
the online state and nothing is stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import pandas as pd

from vigil.config import Settings
from vigil.data import schema
from vigil.data.transaction import TransactionFields
from vigil.decisions.pipeline import DecisionPipeline
from vigil.features.offline import compute_features_frame
from vigil.fraud_metrics import average_precision, card_precision_at_k, roc_auc, threshold_metrics
from vigil.inference.decision import Decision, decide
from vigil.inference.errors import InvalidFeaturesError, ModelScoringError
from vigil.inference.scorer import OnnxScorer

_FLOAT32_MAX = float(np.finfo(np.float32).max)
OUT_OF_RANGE = "feature values must be finite float32 numbers"

FeatureValues = dict[str, float] | list[float]
"""A request's feature values: by name, or a list in the model's feature order."""
FeatureRequest = tuple[FeatureValues, int | None]
"""Feature values and the transaction id to answer with (0 when None)."""
ForwardOutcome = Decision | InvalidFeaturesError | ModelScoringError
"""Per request: its decision, or why the model could not decide it."""


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Decisions for a labelled batch and the metrics they earn."""

    model_version: str
    metrics: dict[str, float | int | None]
    decisions: list[Decision]


class BatchDecisions:
    """Model-only and batch-only decisions with the pipeline's models (nothing stored)."""

    def __init__(self, settings: Settings, pipeline: DecisionPipeline) -> None:
        self._settings = settings
        self._pipeline = pipeline

    def forward(self, requests: Sequence[FeatureRequest]) -> list[ForwardOutcome]:
        """Score the precomputed feature values of several requests in one model run.

        Each request's values are by name (exactly the model's) or a list in the model's
        order; per request, in order, its decision or why it has none: a request with bad
        values fails alone, and so does one the model cannot score (each row is then scored
        on its own to find it).
        """
        champion = self._pipeline.models.snapshot().champion
        names = champion.feature_names
        outcomes: list[ForwardOutcome | None] = [None] * len(requests)
        rows: list[list[float]] = []
        for position, (features, _) in enumerate(requests):
            try:
                rows.append(feature_values(features, names))
            except InvalidFeaturesError as error:
                outcomes[position] = error
        scored = [p for p, outcome in enumerate(outcomes) if outcome is None]
        if scored:
            matrix, out_of_range = feature_matrix(rows)
            for position in np.asarray(scored)[out_of_range].tolist():
                outcomes[position] = InvalidFeaturesError(OUT_OF_RANGE)
            scored = [p for p, bad in zip(scored, out_of_range.tolist(), strict=True) if not bad]
            ids = [requests[p][1] or 0 for p in scored]
            for position, outcome in zip(scored, self._decide(champion, ids, matrix), strict=True):
                outcomes[position] = outcome
        return cast(list[ForwardOutcome], outcomes)  # every position was given one

    def _decide(
        self, model: OnnxScorer, ids: list[int], matrix: np.ndarray
    ) -> list[Decision | ModelScoringError]:
        """Decisions for the rows of ``matrix``; rows alone when the batch cannot be scored."""
        if not ids:
            return []
        reason_codes = self._pipeline.reason_codes
        try:
            decisions: list[Decision | ModelScoringError] = list(
                decide(model, ids, matrix, reason_codes)
            )
        except ModelScoringError as error:
            if len(ids) == 1:
                return [error]
            return [
                outcome
                for row in range(len(ids))
                for outcome in self._decide(model, ids[row : row + 1], matrix[row : row + 1])
            ]
        self._pipeline.observe([d for d in decisions if isinstance(d, Decision)])
        return decisions

    def score_batch(self, transactions: Sequence[TransactionFields]) -> list[Decision]:
        """Decisions in input order; features computed over the batch itself."""
        champion = self._pipeline.models.snapshot().champion
        ids, matrix = self._batch_features(transactions, champion)
        return decide(champion, ids, matrix, self._pipeline.reason_codes)

    def evaluate(
        self, transactions: Sequence[TransactionFields], labels: Sequence[int]
    ) -> Evaluation:
        """Decisions plus AUC ROC, AP, precision, recall and CP@k on a labelled batch."""
        champion = self._pipeline.models.snapshot().champion
        ids, matrix = self._batch_features(transactions, champion, labels)
        decisions = decide(champion, ids, matrix, self._pipeline.reason_codes)
        truth = np.fromiter(labels, np.int8, len(transactions))
        scores = np.fromiter((d.score for d in decisions), np.float64, len(decisions))
        return Evaluation(
            champion.metadata.model_version,
            self._metrics(transactions, truth, scores, champion.metadata.threshold),
            decisions,
        )

    def _batch_features(
        self,
        transactions: Sequence[TransactionFields],
        model: OnnxScorer,
        labels: Sequence[int] | None = None,
    ) -> tuple[list[int], np.ndarray]:
        frame = transactions_frame(transactions, labels)
        features = compute_features_frame(self._settings.features, frame)
        ids = frame[schema.TRANSACTION_ID].tolist()
        aligned = features.set_index(schema.TRANSACTION_ID).loc[ids, list(model.feature_names)]
        return ids, aligned.to_numpy(dtype=np.float32)

    def _metrics(
        self,
        transactions: Sequence[TransactionFields],
        labels: np.ndarray,
        scores: np.ndarray,
        threshold: float,
    ) -> dict[str, float | int | None]:
        train = self._settings.train
        both_classes = 0 < int(labels.sum()) < labels.size
        at_threshold = threshold_metrics(
            labels, scores, threshold, train.cost_missed_fraud, train.cost_false_alarm
        )
        days = [t.tx_datetime.date().toordinal() for t in transactions]
        cards = [t.customer_id for t in transactions]
        return {
            "n_transactions": int(labels.size),
            "n_frauds": int(labels.sum()),
            "auc_roc": roc_auc(labels, scores) if both_classes else None,
            "average_precision": average_precision(labels, scores) if both_classes else None,
            "precision": at_threshold.precision,
            "recall": at_threshold.recall,
            "card_precision_at_k": card_precision_at_k(
                days, cards, labels, scores, train.top_k_cards
            ),
            "k": train.top_k_cards,
        }


def feature_values(features: FeatureValues, names: Sequence[str]) -> list[float]:
    """Values in model order from features by name (exactly the model's) or a list."""
    if isinstance(features, dict):
        try:  # as many names as the model's, each of them present: exactly the model's
            values: list[float] = [features[name] for name in names]
        except KeyError:
            values = []
        if len(features) != len(names) or len(values) != len(names):
            missing = [name for name in names if name not in features]
            unknown = sorted(set(features) - set(names))
            raise InvalidFeaturesError(f"missing features {missing}, unknown features {unknown}")
        return values
    if len(features) != len(names):
        raise InvalidFeaturesError(f"expected {len(names)} feature values, got {len(features)}")
    return features


def feature_matrix(rows: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    """([N', F] float32 of the rows within float32's range, [N] bool: the rows outside it).

    Checked in float64, so a value beyond float32's range is rejected instead of becoming inf.
    """
    matrix = np.array(rows, dtype=np.float64)
    out_of_range = ~(np.abs(matrix).max(axis=1, initial=0.0) <= _FLOAT32_MAX)  # NaN too
    if out_of_range.any():
        matrix = matrix[~out_of_range]
    return matrix.astype(np.float32), out_of_range


def transactions_frame(
    transactions: Sequence[TransactionFields], labels: Sequence[int] | None = None
) -> pd.DataFrame:
    """Validated transactions as a frame with the schema's columns and dtypes (labels if any)."""
    columns = list(schema.TRANSACTION_COLUMNS)
    frame = pd.DataFrame({c: [getattr(t, c) for t in transactions] for c in columns})
    if labels is not None:  # the offline features use labels older than the label delay
        frame[schema.TX_FRAUD] = list(labels)
        columns.append(schema.TX_FRAUD)
    return frame.astype({c: schema.DTYPES[c] for c in columns})
