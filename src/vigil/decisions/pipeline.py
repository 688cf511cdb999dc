"""The one decision path: validated transactions in, decisions and records to persist out.

Online features from the state store (in arrival order, each transaction seeing the ones
before it), the champion's decision with reason codes, the challenger's score in shadow, the
records the database keeps. The API (``serving/``), the stream worker and the in-process
replay (``streaming/``) are adapters around :class:`DecisionPipeline`: they translate their
transport and hand the records to the persistence of :class:`~vigil.decisions.runtime.Runtime`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from vigil.data.transaction import TransactionFields
from vigil.features import OnlineFeatureComputer, Transaction
from vigil.inference.columns import ModelColumns
from vigil.inference.decision import Decision, decide
from vigil.inference.manager import ModelManager, ModelSnapshot
from vigil.inference.roles import CHALLENGER, CHAMPION
from vigil.inference.shadow import ShadowScorer
from vigil.monitoring import VigilMetrics
from vigil.monitoring.prometheus import observe_many
from vigil.storage import PredictionRecord, RecordRejected
from vigil.storage.records import utc_now

T = TypeVar("T")
Persist = Callable[[Sequence[PredictionRecord]], Awaitable[list[RecordRejected | None]]]
"""Makes records durable; per record ``None`` (committed) or why the database refused it."""
Guard = Callable[[Callable[[], Awaitable[Any]], str], Awaitable[Any]]
"""Runs an operation (the worker retries transient failures); by default just once."""


async def run_once(operation: Callable[[], Awaitable[T]], _what: str) -> T:
    """The default :data:`Guard`: run ``operation`` once, errors propagate."""
    return await operation()


@dataclass(frozen=True, slots=True)
class ScoredBatch:
    """What one batch produced, row-aligned with its transactions."""

    features: np.ndarray  # online feature rows [N, F], in the online order
    decisions: list[Decision]
    records: list[PredictionRecord]
    state_seconds: float  # the state store's round trip for the whole batch
    models: ModelSnapshot  # the champion (and challenger) that scored it
    recorded: list[Transaction]  # what this batch added to the online state (not repeats)


class DecisionPipeline:
    """Decides on batches of transactions with the manager's current models, then persists.

    :meth:`score` records a batch in the online state and decides; :meth:`settle` hands the
    records to persistence and undoes the online state of any record the database refused
    (it then answers that record's error instead of a decision). The models are read once per
    batch, so a hot swap takes effect from the next batch and every decision names the model
    that made it. A challenger, when set, scores the same rows
    in shadow: its score and version are stored beside the champion's and never change a
    decision.
    """

    def __init__(
        self,
        features: OnlineFeatureComputer,
        models: ModelManager,
        reason_codes: int = 3,
        source: str = "api",
        metrics: VigilMetrics | None = None,
        *,
        persist: Persist,
    ) -> None:
        self.features = features
        self._persist = persist
        self.models = models
        self._columns = ModelColumns(features.names)
        self._shadow = ShadowScorer(features.names)
        self._reason_codes = reason_codes
        self._source = source
        self._metrics = _Observers(metrics) if metrics is not None else None

    @property
    def reason_codes(self) -> int:
        """How many reason codes a flagged decision carries."""
        return self._reason_codes

    async def score(
        self, transactions: Sequence[TransactionFields], arrived: Sequence[float] | None = None
    ) -> ScoredBatch:
        """Record the batch in the online state (in order) and decide every transaction.

        ``arrived`` holds each transaction's ``time.perf_counter()`` arrival (the API's
        requests); a record's latency runs from there, or from the batch's start.
        """
        started = time.perf_counter()
        online = [
            Transaction(t.transaction_id, t.tx_datetime, t.customer_id, t.terminal_id, t.tx_amount)
            for t in transactions
        ]
        recorded = await self.features.arecord_batch(online)
        matrix = recorded.features
        state_seconds = time.perf_counter() - started
        models = self.models.snapshot()  # one snapshot: every answer names its model
        champion, challenger = models.champion, models.challenger
        decisions = decide(
            champion,
            [t.transaction_id for t in transactions],
            self._columns.rows_for(champion, matrix),
            self._reason_codes,
        )
        challenger_scores = self._shadow.scores(challenger, matrix)
        shadows: Sequence[float | None] = challenger_scores or [None] * len(online)
        challenger_version = challenger.metadata.model_version if challenger else None
        finished, now = time.perf_counter(), utc_now()  # one clock read for the whole batch
        starts = arrived if arrived is not None else [started] * len(online)
        records = [
            PredictionRecord.from_decision(
                tx,
                decision,
                latency_ms=(finished - start) * 1000.0,
                source=self._source,
                extra=t.extra_fields(),
                challenger_score=shadow,
                challenger_version=challenger_version,
                received_at=now,
                created_at=now,
            )
            for tx, t, decision, shadow, start in zip(
                online, transactions, decisions, shadows, starts, strict=True
            )
        ]
        if self._metrics is not None:
            self._metrics.observe(state_seconds, challenger_scores)
        return ScoredBatch(matrix, decisions, records, state_seconds, models, recorded.recorded)

    async def settle(
        self, scored: ScoredBatch, guard: Guard = run_once
    ) -> list[RecordRejected | None]:
        """Persist the batch's records; per record ``None`` (durable) or why it was refused.

        A refused record is removed from the online state again, so it leaves no trace; only
        durable decisions are counted in the metrics.
        """
        outcomes: list[RecordRejected | None] = await guard(
            lambda: self._persist(scored.records), "saving predictions"
        )
        refused = {o.transaction_id for o in outcomes if o is not None}
        if refused:
            undo = [tx for tx in scored.recorded if tx.transaction_id in refused]
            await guard(lambda: self.features.aforget(undo), "undoing refused records")
        if self._metrics is not None:
            kept = [d for d, o in zip(scored.decisions, outcomes, strict=True) if o is None]
            self._metrics.count(kept)
        return outcomes

    async def process(
        self, transactions: Sequence[TransactionFields], arrived: Sequence[float] | None = None
    ) -> list[Decision | RecordRejected]:
        """:meth:`score` then :meth:`settle`: each transaction's decision, durable, or error."""
        scored = await self.score(transactions, arrived)
        outcomes = await self.settle(scored)
        return [d if o is None else o for d, o in zip(scored.decisions, outcomes, strict=True)]

    def observe(self, decisions: Sequence[Decision]) -> None:
        """Count decisions made outside :meth:`score` (model-only scoring)."""
        if self._metrics is not None:
            self._metrics.count(decisions)


class _Observers:
    """The metrics one batch updates, resolved once (label look-ups cost on the hot path)."""

    def __init__(self, metrics: VigilMetrics) -> None:
        self._state_latency = metrics.state_store_latency.labels(operation="record")
        self._champion_scores = metrics.scores.labels(role=CHAMPION)
        self._challenger_scores = metrics.scores.labels(role=CHALLENGER)
        self._legit = metrics.decisions.labels(label="legit")
        self._fraud = metrics.decisions.labels(label="fraud")

    def observe(self, state_seconds: float, challenger_scores: Sequence[float] | None) -> None:
        """The state store's round trip and the challenger's scores of one batch."""
        self._state_latency.observe(state_seconds)
        if challenger_scores is not None:
            observe_many(self._challenger_scores, challenger_scores)

    def count(self, decisions: Sequence[Decision]) -> None:
        """Score histogram and decision counters, updated once per batch rather than per row."""
        observe_many(self._champion_scores, [d.score for d in decisions])
        frauds = sum([d.label for d in decisions])
        if frauds:
            self._fraud.inc(frauds)
        if frauds < len(decisions):
            self._legit.inc(len(decisions) - frauds)
