"""Online features: the same definitions as the offline SQL, one transaction at a time."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from vigil.config import FeaturesConfig
from vigil.features import definitions as fd
from vigil.features.definitions import SECONDS_PER_DAY, check_config, feature_names
from vigil.features.state import (
    US_PER_DAY,
    Aggregates,
    Label,
    StateStore,
    Transaction,
    WindowSpec,
    as_transaction,
)
from vigil.features.verdicts import Verdict, VerdictAggregates, verdict_values

logger = logging.getLogger(__name__)

TransactionLike = Transaction | Mapping[str, Any]


def _ratio(numerator: float, baseline: float | None, count: int) -> float:
    """``numerator / baseline`` clipped at the cap; 1 without prior transactions or baseline."""
    if count == 0 or not baseline:
        return 1.0
    return min(numerator / baseline, fd.AMOUNT_RATIO_CAP)


def _amount_baseline_values(amount: float, agg: Aggregates) -> list[float]:
    """Amount over the prior median and mean, recent maximum over the prior median."""
    count, median = agg.prior_count, agg.prior_median
    mean = agg.prior_sum / count if count else None
    largest = amount if agg.recent_max is None else max(amount, agg.recent_max)
    return [
        _ratio(amount, median, count),
        _ratio(amount, mean, count),
        _ratio(largest, median, count),
    ]


def _fraud_run_values(ts_us: int, agg: Aggregates, frauds: int) -> list[float]:
    """Days since the first and the last known fraud (0 when none), known frauds."""
    return [
        0.0 if moment is None else (ts_us - moment) / float(US_PER_DAY)
        for moment in (agg.terminal_first_fraud_us, agg.terminal_last_fraud_us)
    ] + [float(frauds)]


@dataclass(frozen=True, slots=True)
class RecordedBatch:
    """Feature rows of a batch and the transactions that batch added to the state."""

    features: np.ndarray
    recorded: list[Transaction]  # ids already held (repeats) are left out


class OnlineFeatureComputer:
    """Turns transactions into feature vectors in :func:`feature_names` order, updating state."""

    def __init__(
        self,
        config: FeaturesConfig,
        store: StateStore,
        dtype: type[np.floating[Any]] = np.float32,
    ) -> None:
        check_config(config)
        self.config = config
        self.store = store
        self.dtype = dtype
        self.spec = WindowSpec.from_config(config)
        self.names = feature_names(config)
        longest = max(config.windows_days)
        self._cap_seconds = float(longest * SECONDS_PER_DAY)
        self._longest_index = config.windows_days.index(longest)

    def _vector(self, tx: Transaction, agg: Aggregates) -> list[float]:
        """Feature values as the SQL computes them (same formulas, same edge cases)."""
        moment = tx.tx_datetime
        values = [
            tx.tx_amount,
            float(moment.weekday() >= 5),
            float(moment.hour <= self.config.night_end_hour),
        ]
        # A count of 0 only happens for a transaction id replayed at another time: the store
        # keeps the first recording (idempotence), so the replay may fall outside its windows.
        averages = [
            s / c if c else 0.0 for s, c in zip(agg.customer_sum, agg.customer_count, strict=True)
        ]
        for count, average in zip(agg.customer_count, averages, strict=True):
            values += [float(count), average]
        for count, frauds in zip(agg.terminal_count, agg.terminal_frauds, strict=True):
            values += [float(count), frauds / count if count else 0.0]
        if self.config.extended:
            longest_avg = averages[self._longest_index]
            gap = agg.prev_gap_us
            seconds = self._cap_seconds if gap is None else min(gap / 1e6, self._cap_seconds)
            risk_count = agg.customer_risk_count
            values += [
                tx.tx_amount / longest_avg if longest_avg != 0 else 1.0,
                seconds,
                agg.customer_risk_frauds / risk_count if risk_count else 0.0,
            ]
        if fd.CUSTOMER_AMOUNT_BASELINE in self.config.extra:
            values += _amount_baseline_values(tx.tx_amount, agg)
        if fd.TERMINAL_FRAUD_RUN in self.config.extra:
            values += _fraud_run_values(tx.ts_us, agg, agg.terminal_frauds[self._longest_index])
        return values

    def _matrix(
        self,
        txs: Sequence[Transaction],
        aggs: Sequence[Aggregates],
        verdicts: Sequence[VerdictAggregates] | None,
    ) -> np.ndarray:
        rows = [self._vector(tx, agg) for tx, agg in zip(txs, aggs, strict=True)]
        if verdicts is not None:
            for row, tx, seen in zip(rows, txs, verdicts, strict=True):
                row += verdict_values(tx.ts_us, seen)
        return np.asarray(rows, dtype=self.dtype).reshape(len(rows), len(self.names))

    def features_for(self, tx: TransactionLike) -> np.ndarray:
        """Record ``tx`` (idempotent on its id) and return its feature vector."""
        return self.features_for_batch([tx])[0]

    def features_for_batch(self, txs: Sequence[TransactionLike]) -> np.ndarray:
        """Record a micro-batch in order (each sees the ones before it); one row per tx."""
        parsed = [as_transaction(tx) for tx in txs]
        aggregates = self.store.record(parsed, self.spec)
        verdicts = (
            self.store.verdict_aggregates(parsed, self.spec) if self.config.verdicts else None
        )
        return self._matrix(parsed, aggregates, verdicts)

    async def arecord_batch(self, txs: Sequence[TransactionLike]) -> RecordedBatch:
        """Async :meth:`features_for_batch`, also saying which transactions this call recorded."""
        parsed = [as_transaction(tx) for tx in txs]
        aggregates = await self.store.arecord(parsed, self.spec)
        verdicts = None
        if self.config.verdicts:
            verdicts = await self.store.averdict_aggregates(parsed, self.spec)
        recorded = [tx for tx, agg in zip(parsed, aggregates, strict=True) if agg.recorded]
        return RecordedBatch(self._matrix(parsed, aggregates, verdicts), recorded)

    async def aforget(self, txs: Sequence[Transaction]) -> None:
        """Remove transactions recorded by :meth:`arecord_batch` whose storage then failed."""
        await self.store.aforget(txs)

    def add_label(
        self,
        transaction_id: int,
        customer_id: int,
        terminal_id: int,
        tx_datetime: datetime,
        fraud: bool,
    ) -> None:
        """Feed a fraud label into terminal and customer risk state (idempotent)."""
        self.store.add_label(Label(transaction_id, customer_id, terminal_id, tx_datetime, fraud))

    async def aadd_label(
        self,
        transaction_id: int,
        customer_id: int,
        terminal_id: int,
        tx_datetime: datetime,
        fraud: bool,
    ) -> None:
        """Async :meth:`add_label`."""
        await self.store.aadd_label(
            Label(transaction_id, customer_id, terminal_id, tx_datetime, fraud)
        )

    def add_verdicts(self, verdicts: Sequence[Verdict]) -> None:
        """Hold analysts' verdicts for the verdict features (latest review per transaction).

        Labels are separate: a verdict path also calls :meth:`add_label` (the delayed-label
        features see a label only once its transaction is older than the label delay).
        """
        self.store.add_verdicts(verdicts, self.spec)

    async def aadd_verdicts(self, verdicts: Sequence[Verdict]) -> None:
        """Async :meth:`add_verdicts`."""
        await self.store.aadd_verdicts(verdicts, self.spec)
