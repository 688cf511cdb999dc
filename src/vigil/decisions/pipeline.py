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
from vigil.decisions.idempotency import (
    Claim,
    InFlight,
    RecentIds,
    Replayed,
    Settled,
    TransactionConflict,
    answer_repeat,
)
from vigil.features import OnlineFeatureComputer, Transaction
from vigil.features.online import RecordedBatch
from vigil.inference.columns import ModelColumns
from vigil.inference.decision import Decision, decide
from vigil.inference.manager import ModelManager, ModelSnapshot
from vigil.inference.roles import CHALLENGER, CHAMPION
from vigil.inference.shadow import ShadowScorer
from vigil.monitoring import VigilMetrics
from vigil.monitoring.prometheus import observe_many
from vigil.storage import PredictionRecord, RecordRejected
from vigil.storage.errors import AlreadyStored
from vigil.storage.records import ScoredTransaction, utc_now

T = TypeVar("T")
Persist = Callable[[Sequence[PredictionRecord]], Awaitable[list[RecordRejected | None]]]
"""Makes records durable; per record ``None`` (committed) or why the database refused it."""
Lookup = Callable[[Sequence[int]], Awaitable[list[PredictionRecord]]]
"""The records already stored for any of the given transaction ids (one query)."""
RECENT_IDS = 65_536
"""Ids stored lately that a process remembers (x1 to x2): their repeats are looked up first."""
Guard = Callable[[Callable[[], Awaitable[Any]], str], Awaitable[Any]]
"""Runs an operation (the worker retries transient failures); by default just once."""
Outcome = Decision | Replayed | BaseException
"""Per transaction: a new durable decision, the stored one for a repeated id, or why neither
(:class:`RecordRejected`, :class:`TransactionConflict`, an outage)."""


async def run_once(operation: Callable[[], Awaitable[T]], _what: str) -> T:
    """The default :data:`Guard`: run ``operation`` once, errors propagate."""
    return await operation()


@dataclass(frozen=True, slots=True)
class PendingBatch:
    """A batch after :meth:`DecisionPipeline.record`: its ids claimed, repeats of ids stored
    lately found, the new ones (``fresh``, positions in the batch) in the online state."""

    transactions: Sequence[TransactionFields]  # the whole batch, in order
    arrived: Sequence[float] | None  # per transaction its perf_counter arrival, if known
    started: float  # perf_counter when the batch was taken
    claim: Claim  # the batch's ids in flight
    stored: dict[int, PredictionRecord]  # by id: claimed ids found already stored
    fresh: list[int]  # positions of the transactions decided now
    online: list[Transaction]  # the state store's view of those, row-aligned
    features: RecordedBatch | None  # their online feature rows (None when nothing is new)
    state_seconds: float  # the state store's round trip for the whole batch


@dataclass(frozen=True, slots=True)
class ScoredBatch:
    """What one batch produced. ``features``, ``decisions`` and ``records`` are row-aligned
    with the transactions decided now (``fresh``, positions in the batch); the other
    positions repeat an id stored before or decided by another batch (:mod:`idempotency`).
    ``recorded`` holds what this batch added to the online state: a new id whose customer
    history already held it (stored before, by another process) is decided but not added."""

    features: np.ndarray  # online feature rows [N, F], in the online order
    decisions: list[Decision]
    records: list[PredictionRecord]
    state_seconds: float  # the state store's round trip for the whole batch
    models: ModelSnapshot  # the champion (and challenger) that scored it
    recorded: list[Transaction]  # what this batch added to the online state (not repeats)
    transactions: Sequence[TransactionFields]  # the whole batch, in order
    fresh: list[int]  # positions of the transactions decided now
    stored: dict[int, PredictionRecord]  # by id: claimed ids found already stored
    claim: Claim  # the batch's ids in flight


class DecisionPipeline:
    """Decides on batches of transactions with the manager's current models, then persists.

    :meth:`score` claims the batch's ids, looks up the ones this process saw stored lately
    (one query, none for a batch of new ids), records the others in the online state and
    decides them; :meth:`settle` hands their records to persistence, answers an id the insert
    found stored before with that stored decision, undoes the online state of a record the
    database refused (it then answers that record's error instead of a decision) or that lost
    its id to another payload, and answers every repeated id with its stored decision
    (:mod:`vigil.decisions.idempotency`). :meth:`score` is :meth:`record` (the ordered part:
    ids, look-up, online state) then :meth:`score_recorded` (models, records; no I/O), which
    the stream worker runs apart so that one batch is scored while the next is recorded.
    The models are read once
    per batch, so a hot swap takes effect from the next batch and every decision names the
    model that made it. A challenger, when set, scores the same rows in shadow: its score
    and version are stored beside the champion's and never change a decision.
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
        lookup: Lookup,
        recent_ids: int = RECENT_IDS,
    ) -> None:
        self.features = features
        self._persist = persist
        self._lookup = lookup
        self._in_flight = InFlight()
        self._recent = RecentIds(recent_ids)
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
        """Decide every transaction whose id is new; record those in the online state in order.

        ``arrived`` holds each transaction's ``time.perf_counter()`` arrival (the API's
        requests); a record's latency runs from there, or from the batch's start. Every id
        this claims is released by :meth:`settle` (or here, if this fails).
        """
        return self.score_recorded(await self.record(transactions, arrived))

    async def record(
        self, transactions: Sequence[TransactionFields], arrived: Sequence[float] | None = None
    ) -> PendingBatch:
        """The first half of :meth:`score`, the one that must follow the batch before it:
        claim the ids, look up repeats of ids stored lately, record the new ones in the
        online state. :meth:`score_recorded` needs nothing more from the state store, so a caller
        may record the next batch while this one is decided."""
        started = time.perf_counter()
        claim = self._in_flight.claim(transactions)
        try:
            return await self._record(transactions, arrived, started, claim)
        except BaseException as error:
            self._release_claim(transactions, claim, error)
            raise

    def score_recorded(self, recorded: PendingBatch) -> ScoredBatch:
        """The second half of :meth:`score`: the champion's decisions, the challenger's shadow
        scores and the records of the new transactions (no I/O)."""
        try:
            return self._decide(recorded)
        except BaseException as error:
            self._release_claim(recorded.transactions, recorded.claim, error)
            raise

    def _release_claim(
        self, transactions: Sequence[TransactionFields], claim: Claim, error: BaseException
    ) -> None:
        for position in claim.claimed:
            self._in_flight.release(transactions[position].transaction_id, error)

    async def _record(
        self,
        transactions: Sequence[TransactionFields],
        arrived: Sequence[float] | None,
        started: float,
        claim: Claim,
    ) -> PendingBatch:
        seen = [
            tid for tid in (transactions[p].transaction_id for p in claim.claimed)
            if tid in self._recent
        ]  # fmt: skip
        found = await self._lookup(seen) if seen else []  # new ids: no round trip
        stored = {record.transaction_id: record for record in found}
        for tid, record in stored.items():
            self._in_flight.release(tid, record)
        fresh = [p for p in claim.claimed if transactions[p].transaction_id not in stored]
        online = [_online(transactions[p]) for p in fresh]
        rows = await self.features.arecord_batch(online) if online else None
        state_seconds = time.perf_counter() - started
        return PendingBatch(
            transactions, arrived, started, claim, stored, fresh, online, rows, state_seconds
        )

    def _decide(self, batch: PendingBatch) -> ScoredBatch:
        transactions, fresh, online = batch.transactions, batch.fresh, batch.online
        stored, claim, state_seconds = batch.stored, batch.claim, batch.state_seconds
        models = self.models.snapshot()  # one snapshot: every answer names its model
        if batch.features is None:  # every id repeats one stored or in flight: no model
            nothing = np.empty((0, len(self.features.names)), dtype=self.features.dtype)
            return ScoredBatch(nothing, [], [], 0.0, models, [], transactions, [], stored, claim)
        new = [transactions[p] for p in fresh]
        recorded = batch.features
        matrix = recorded.features
        champion, challenger = models.champion, models.challenger
        decisions = decide(
            champion,
            [t.transaction_id for t in new],
            self._columns.rows_for(champion, matrix),
            self._reason_codes,
        )
        challenger_scores = self._shadow.scores(challenger, matrix)
        shadows: Sequence[float | None] = challenger_scores or [None] * len(online)
        challenger_version = challenger.metadata.model_version if challenger else None
        finished, now = time.perf_counter(), utc_now()  # one clock read for the whole batch
        arrived, started = batch.arrived, batch.started
        starts = [arrived[p] for p in fresh] if arrived is not None else [started] * len(online)
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
                online, new, decisions, shadows, starts, strict=True
            )
        ]
        if self._metrics is not None:
            self._metrics.observe(state_seconds, challenger_scores)
        return ScoredBatch(
            matrix,
            decisions,
            records,
            state_seconds,
            models,
            recorded.recorded,
            transactions,
            fresh,
            stored,
            claim,
        )

    async def settle(self, scored: ScoredBatch, guard: Guard = run_once) -> list[Outcome]:
        """Persist the new decisions and answer the repeats; one outcome per transaction.

        A refused record is removed from the online state again, so it leaves no trace; only
        durable new decisions are counted in the metrics. A repeated id waits for the batch
        deciding it (this one or another) and gets its stored decision; so does a new one
        that another process stored first.
        """
        try:
            fates = await self._persist_fresh(scored, guard)
        except BaseException as error:
            for record in scored.records:
                self._in_flight.release(record.transaction_id, error)
            raise
        claim = scored.claim
        if not (scored.stored or claim.repeats or claim.waiting or any(fates)):
            # The common batch: new ids only, each stored now; answers in batch order.
            for record in scored.records:
                self._in_flight.release(record.transaction_id, record)
            self._recent.add([record.transaction_id for record in scored.records])
            return list(scored.decisions)
        answers: list[Outcome | None] = [None] * len(scored.transactions)
        settled: dict[int, Settled] = dict(scored.stored)
        for position, decision, record, fate in zip(
            scored.fresh, scored.decisions, scored.records, fates, strict=True
        ):
            settled[record.transaction_id] = record if fate is None else fate
            self._in_flight.release(record.transaction_id, settled[record.transaction_id])
            if fate is None:
                answers[position] = decision
        self._recent.add(
            [tid for tid, first in settled.items() if not isinstance(first, BaseException)]
        )
        transactions = scored.transactions
        for position in [*claim.claimed, *claim.repeats]:
            tx = transactions[position]
            if answers[position] is None:  # stored before, repeated in this batch, or refused
                answers[position] = answer_repeat(tx, settled[tx.transaction_id])
        for position, future in claim.waiting.items():
            answers[position] = answer_repeat(transactions[position], await future)
        done = [answer for answer in answers if answer is not None]
        assert len(done) == len(answers), "every transaction of the batch has its outcome"
        return done

    async def _persist_fresh(self, scored: ScoredBatch, guard: Guard) -> list[Settled | None]:
        """Per new record: ``None`` (stored now), the record another process stored first
        under its id, or why the database refused it; online state undone where needed."""
        if not scored.records:
            return []
        outcomes: list[RecordRejected | None] = await guard(
            lambda: self._persist(scored.records), "saving predictions"
        )
        if not any(outcomes):  # every record stored now: nothing raced, nothing to undo
            if self._metrics is not None:
                self._metrics.count(scored.decisions)
            return [None] * len(outcomes)
        raced = [o.transaction_id for o in outcomes if isinstance(o, AlreadyStored)]
        winners: dict[int, PredictionRecord] = {}
        if raced:  # two processes decided the same new id at once: the stored one stands
            found = await guard(lambda: self._lookup(raced), "reading stored decisions")
            winners = {record.transaction_id: record for record in found}
        fates: list[Settled | None] = []
        for record, outcome in zip(scored.records, outcomes, strict=True):
            winner = winners.get(record.transaction_id)
            fates.append(winner if winner is not None and outcome is not None else outcome)
        forget, restore = _undo(scored, fates)
        if forget:
            await guard(lambda: self.features.aforget(forget), "undoing refused records")
        if restore:
            await guard(lambda: self.features.arecord_batch(restore), "restoring stored records")
        if self._metrics is not None:
            kept = [d for d, o in zip(scored.decisions, outcomes, strict=True) if o is None]
            self._metrics.count(kept)
        return fates

    async def process(
        self, transactions: Sequence[TransactionFields], arrived: Sequence[float] | None = None
    ) -> list[Outcome]:
        """:meth:`score` then :meth:`settle`: per transaction its outcome (see :data:`Outcome`)."""
        return await self.settle(await self.score(transactions, arrived))

    def observe(self, decisions: Sequence[Decision]) -> None:
        """Count decisions made outside :meth:`score` (model-only scoring)."""
        if self._metrics is not None:
            self._metrics.count(decisions)


def _online(tx: ScoredTransaction) -> Transaction:
    """The online state's view of a transaction (or of a stored record)."""
    return Transaction(
        tx.transaction_id, tx.tx_datetime, tx.customer_id, tx.terminal_id, tx.tx_amount
    )


def _undo(
    scored: ScoredBatch, fates: Sequence[Settled | None]
) -> tuple[list[Transaction], list[Transaction]]:
    """What to remove from the online state again, and which stored records to put back.

    A refused record leaves no trace: its entries are removed if this batch added them. A
    record that lost its id to another payload (stored by another process, or before a
    restart) is removed where it may have left one: its customer's history if this batch
    added it there, its terminal's if the terminal differs. Removal is by id, so when that
    also took the stored transaction's own entry (same customer or terminal: the loser
    recorded first, the winner's record then added nothing), the stored one is recorded
    again: the state ends with the decision that stands.
    """
    added = {tx.transaction_id for tx in scored.recorded}
    forget: list[Transaction] = []
    restore: list[Transaction] = []
    for record, fate in zip(scored.records, fates, strict=True):
        tid, stands = record.transaction_id, None
        if isinstance(fate, BaseException):
            left_entry = tid in added
        elif fate is not None and isinstance(answer_repeat(record, fate), TransactionConflict):
            left_entry, stands = tid in added or record.terminal_id != fate.terminal_id, fate
        else:  # stored now, or the same payload stored before: the entry is the right one
            continue
        if not left_entry:
            continue
        forget.append(_online(record))
        if stands is not None and (
            record.customer_id == stands.customer_id or record.terminal_id == stands.terminal_id
        ):
            restore.append(_online(stands))
    return forget, restore


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
