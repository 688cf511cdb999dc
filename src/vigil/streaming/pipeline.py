"""Transactions to decisions: online features, the shared decision logic, records to persist.

The stream worker and the in-process replay both run this, so they score exactly as the API.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from vigil.data.transaction import naive_utc
from vigil.features import OnlineFeatureComputer, Transaction
from vigil.inference.columns import ModelColumns
from vigil.inference.decision import Decision, decide
from vigil.inference.manager import ModelManager, ModelSnapshot
from vigil.inference.shadow import ShadowScorer
from vigil.storage import PredictionRecord
from vigil.streaming.messages import DecisionMessage, TransactionMessage


@dataclass(frozen=True, slots=True)
class ScoredBatch:
    """What one micro-batch produced, row-aligned with its messages."""

    features: np.ndarray
    records: list[PredictionRecord]
    decisions: list[DecisionMessage]
    state_seconds: float  # the state store's round trip for the whole batch
    models: ModelSnapshot  # the champion (and challenger) that scored it
    recorded: list[Transaction]  # what this batch added to the online state (not repeats)


def decision_message(
    decision: Decision, decided_at: datetime, published_at: float | None
) -> DecisionMessage:
    """The broker message for a decision."""
    return DecisionMessage(
        transaction_id=int(decision.transaction_id),
        score=decision.score,
        label=decision.label,
        threshold=decision.threshold,
        reason_codes=[reason.feature for reason in decision.reason_codes],
        model_version=decision.model_version,
        decided_at=decided_at,
        published_at=published_at,
    )


class ScoringPipeline:
    """Scores micro-batches of transaction messages with the manager's current champion.

    The models are read once per micro-batch, so a hot swap (``ModelManager.deploy``) takes
    effect from the next batch and every decision names the model that made it. A challenger,
    when set, scores the same rows in shadow: its score and version are stored beside the
    champion's and never change a decision.
    """

    def __init__(
        self,
        features: OnlineFeatureComputer,
        models: ModelManager,
        reason_codes: int = 3,
        source: str = "stream",
    ) -> None:
        self._features = features
        self._models = models
        self._columns = ModelColumns(features.names)
        self._shadow = ShadowScorer(features.names)
        self._reason_codes = reason_codes
        self._source = source

    async def score(self, messages: Sequence[TransactionMessage]) -> ScoredBatch:
        """Record the batch in the online state (in order) and decide every transaction."""
        started = time.perf_counter()
        txs = [
            Transaction(
                m.transaction_id,
                naive_utc(m.tx_datetime),
                m.customer_id,
                m.terminal_id,
                m.tx_amount,
            )
            for m in messages
        ]
        state_started = time.perf_counter()
        recorded = await self._features.arecord_batch(txs)
        features = recorded.features
        state_seconds = time.perf_counter() - state_started
        models = self._models.snapshot()
        champion, challenger = models.champion, models.challenger
        decisions = decide(
            champion,
            [tx.transaction_id for tx in txs],
            self._columns.rows_for(champion, features),
            self._reason_codes,
        )
        challenger_scores = self._shadow.scores(challenger, features)
        shadows: Sequence[float | None] = challenger_scores or [None] * len(txs)
        challenger_version = challenger.metadata.model_version if challenger else None
        latency_ms = (time.perf_counter() - started) * 1000 / max(len(txs), 1)
        now = datetime.now(UTC)
        records = [
            PredictionRecord.from_decision(
                tx,
                d,
                latency_ms=latency_ms,
                source=self._source,
                extra=m.extra,
                challenger_score=shadow,
                challenger_version=challenger_version,
                received_at=now,
                created_at=now,
            )
            for tx, d, m, shadow in zip(txs, decisions, messages, shadows, strict=True)
        ]
        published = [
            decision_message(d, now, m.published_at)
            for d, m in zip(decisions, messages, strict=True)
        ]
        return ScoredBatch(features, records, published, state_seconds, models, recorded.recorded)
