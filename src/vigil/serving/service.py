"""The service's domain logic, free of HTTP: features, champion (and shadow challenger), decision,
persistence. Routes parse, call one method here, and shape the answer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vigil.config import Settings
from vigil.data import schema
from vigil.features import OnlineFeatureComputer
from vigil.features import Transaction as OnlineTransaction
from vigil.features.offline import compute_features_frame
from vigil.fraud_metrics import average_precision, card_precision_at_k, roc_auc, threshold_metrics
from vigil.inference.columns import ModelColumns
from vigil.inference.decision import Decision, decide
from vigil.inference.errors import InvalidFeaturesError
from vigil.inference.manager import ModelManager
from vigil.inference.roles import CHALLENGER, CHAMPION
from vigil.inference.scorer import OnnxScorer
from vigil.inference.shadow import ShadowScorer
from vigil.monitoring import VigilMetrics
from vigil.monitoring.prometheus import observe_many
from vigil.serving.batching import MicroBatcher
from vigil.serving.schemas import ForwardRequest, LabelledTransaction, Transaction
from vigil.storage import GroupCommitWriter, PredictionRecord, RecordRejected
from vigil.storage.records import utc_now


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Decisions for a labelled batch and the metrics they earn."""

    model_version: str
    metrics: dict[str, float | int | None]
    decisions: list[Decision]


class PredictionService:
    """Scores transactions with the serving model; ``predict`` also updates state and persists."""

    def __init__(
        self,
        settings: Settings,
        models: ModelManager,
        features: OnlineFeatureComputer,
        writer: GroupCommitWriter,
        metrics: VigilMetrics,
    ) -> None:
        self._settings = settings
        self._models = models
        self._features = features
        self._batcher: MicroBatcher[tuple[Transaction, float], Decision] = MicroBatcher(
            self._predict_batch
        )
        self._writer = writer
        self._reason_codes = settings.inference.reason_codes
        # One mapping per role: each is redone only when that role's model changes.
        self._champion_columns = ModelColumns(self._features.names)
        self._shadow = ShadowScorer(self._features.names)
        self._state_latency = metrics.state_store_latency.labels(operation="record")
        self._champion_scores = metrics.scores.labels(role=CHAMPION)
        self._challenger_scores = metrics.scores.labels(role=CHALLENGER)
        self._decisions = {
            0: metrics.decisions.labels(label="legit"),
            1: metrics.decisions.labels(label="fraud"),
        }

    async def predict(self, tx: Transaction) -> Decision:
        """Online features, champion decision (challenger in shadow), durable write, answer.

        Concurrent calls are micro-batched (:class:`MicroBatcher`): one state-store round
        trip, one model run and one writer submit per batch.
        """
        return await self._batcher.submit((tx, time.perf_counter()))

    async def _predict_batch(
        self, batch: list[tuple[Transaction, float]]
    ) -> list[Decision | RecordRejected]:
        """:meth:`predict` for the requests of one loop iteration, in arrival order.

        A record the database refuses fails its own request only (``RecordRejected``, 422)
        and is removed from the online state again, so it leaves no trace.
        """
        online = [
            OnlineTransaction(
                tx.transaction_id, tx.tx_datetime, tx.customer_id, tx.terminal_id, tx.tx_amount
            )
            for tx, _ in batch
        ]
        started = time.perf_counter()
        recorded = await self._features.arecord_batch(online)
        matrix = recorded.features
        self._state_latency.observe(time.perf_counter() - started)
        models = self._models.snapshot()  # one snapshot: every answer names its model
        champion, challenger = models.champion, models.challenger
        ids = [tx.transaction_id for tx, _ in batch]
        decisions = decide(
            champion, ids, self._champion_columns.rows_for(champion, matrix), self._reason_codes
        )
        challenger_scores = self._shadow.scores(challenger, matrix)
        if challenger_scores is not None:
            observe_many(self._challenger_scores, challenger_scores)
        shadows: Sequence[float | None] = challenger_scores or [None] * len(batch)
        challenger_version = challenger.metadata.model_version if challenger else None
        finished, now = time.perf_counter(), utc_now()  # one clock read for the whole batch
        records = [
            PredictionRecord.from_decision(
                tx,
                decision,
                latency_ms=(finished - started) * 1000.0,
                extra=tx.model_extra or None,
                challenger_score=shadow,
                challenger_version=challenger_version,
                received_at=now,
                created_at=now,
            )
            for (tx, started), decision, shadow in zip(batch, decisions, shadows, strict=True)
        ]
        outcomes = await self._writer.submit_many(records)
        refused = {o.transaction_id for o in outcomes if o is not None}
        if refused:
            await self._features.aforget(
                [tx for tx in recorded.recorded if tx.transaction_id in refused]
            )
        self._observe([d for d, o in zip(decisions, outcomes, strict=True) if o is None])
        return [d if o is None else o for d, o in zip(decisions, outcomes, strict=True)]

    def forward(self, request: ForwardRequest) -> Decision:
        """Model only: score precomputed features; nothing is stored."""
        champion = self._models.snapshot().champion
        vector = _feature_vector(request.features, champion.feature_names)
        tid = request.transaction_id if request.transaction_id is not None else 0
        decisions = decide(champion, [tid], vector, self._reason_codes)
        self._observe(decisions)
        return decisions[0]

    def score_batch(self, transactions: Sequence[Transaction]) -> list[Decision]:
        """Decisions in input order; features computed over the batch itself (nothing stored)."""
        champion = self._models.snapshot().champion
        ids, matrix = self._batch_features(transactions, champion)
        return decide(champion, ids, matrix, self._reason_codes)

    def evaluate(self, transactions: Sequence[LabelledTransaction]) -> Evaluation:
        """Decisions plus AUC ROC, AP, precision, recall and CP@k on a labelled batch."""
        champion = self._models.snapshot().champion
        ids, matrix = self._batch_features(transactions, champion)
        decisions = decide(champion, ids, matrix, self._reason_codes)
        labels = np.fromiter((t.tx_fraud for t in transactions), np.int8, len(transactions))
        scores = np.fromiter((d.score for d in decisions), np.float64, len(decisions))
        return Evaluation(
            champion.metadata.model_version,
            self._metrics(transactions, labels, scores, champion.metadata.threshold),
            decisions,
        )

    def _batch_features(
        self, transactions: Sequence[Transaction], model: OnnxScorer
    ) -> tuple[list[int], np.ndarray]:
        frame = transactions_frame(transactions)
        features = compute_features_frame(self._settings.features, frame)
        ids = frame[schema.TRANSACTION_ID].tolist()
        aligned = features.set_index(schema.TRANSACTION_ID).loc[ids, list(model.feature_names)]
        return ids, aligned.to_numpy(dtype=np.float32)

    def _metrics(
        self,
        transactions: Sequence[LabelledTransaction],
        labels: np.ndarray,
        scores: np.ndarray,
        threshold: float,
    ) -> dict[str, float | int | None]:
        both_classes = 0 < int(labels.sum()) < labels.size
        at_threshold = threshold_metrics(
            labels,
            scores,
            threshold,
            self._settings.train.cost_missed_fraud,
            self._settings.train.cost_false_alarm,
        )
        k = self._settings.train.top_k_cards
        days = [t.tx_datetime.date().toordinal() for t in transactions]
        cards = [t.customer_id for t in transactions]
        return {
            "n_transactions": int(labels.size),
            "n_frauds": int(labels.sum()),
            "auc_roc": roc_auc(labels, scores) if both_classes else None,
            "average_precision": average_precision(labels, scores) if both_classes else None,
            "precision": at_threshold.precision,
            "recall": at_threshold.recall,
            "card_precision_at_k": card_precision_at_k(days, cards, labels, scores, k),
            "k": k,
        }

    def _observe(self, decisions: Sequence[Decision]) -> None:
        """Score histogram and decision counters, updated once per batch rather than per row."""
        observe_many(self._champion_scores, [d.score for d in decisions])
        frauds = sum([d.label for d in decisions])
        if frauds:
            self._decisions[1].inc(frauds)
        if frauds < len(decisions):
            self._decisions[0].inc(len(decisions) - frauds)


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _feature_vector(features: dict[str, float] | list[float], names: Sequence[str]) -> np.ndarray:
    """[1, F] float32 from features by name (exactly the model's) or a list in model order."""
    if isinstance(features, dict):
        if len(features) != len(names) or not features.keys() >= set(names):
            missing = [name for name in names if name not in features]
            unknown = sorted(set(features) - set(names))
            raise InvalidFeaturesError(f"missing features {missing}, unknown features {unknown}")
        values: list[float] = [features[name] for name in names]
    else:
        values = features
    if len(values) != len(names):
        raise InvalidFeaturesError(f"expected {len(names)} feature values, got {len(values)}")
    # Checked in float64, so a value beyond float32's range is rejected instead of becoming inf.
    vector = np.asarray(values, dtype=np.float64).reshape(1, -1)
    if not float(np.abs(vector).max(initial=0.0)) <= _FLOAT32_MAX:  # also false for NaN
        raise InvalidFeaturesError("feature values must be finite float32 numbers")
    return vector.astype(np.float32)


def transactions_frame(transactions: Sequence[Transaction]) -> pd.DataFrame:
    """Validated transactions as a frame with the schema's columns and dtypes (labels if any)."""
    columns = [*schema.TRANSACTION_COLUMNS]
    if isinstance(transactions[0], LabelledTransaction):
        columns.append(schema.TX_FRAUD)
    frame = pd.DataFrame({c: [getattr(t, c) for t in transactions] for c in columns})
    return frame.astype({c: schema.DTYPES[c] for c in columns})
