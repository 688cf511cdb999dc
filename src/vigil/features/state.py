"""Online feature state: the store interface, its value types and the in-process store.

A store keeps, per customer and per terminal, the recent transactions ``(ts, id)`` with
the amount and any fraud label received, trimmed to the longest window plus the label
delay. ``record`` appends transactions (idempotent on ``transaction_id``) and returns, for
each, the raw window aggregates that :mod:`vigil.features.online` turns into features.
"""

from __future__ import annotations

import math
import statistics
import threading
from bisect import bisect_left, bisect_right, insort
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from vigil.config import FeaturesConfig
from vigil.data import schema
from vigil.data.transaction import check_ranges, naive_utc
from vigil.features import definitions as fd
from vigil.features.definitions import SECONDS_PER_DAY
from vigil.features.verdicts import Verdict, VerdictAggregates, VerdictState
from vigil.readonly import readonly

US_PER_DAY = SECONDS_PER_DAY * 1_000_000
_EPOCH = datetime(1970, 1, 1)


def epoch_us(moment: datetime) -> int:
    """Microseconds since the epoch; naive datetimes are UTC (as in the offline SQL)."""
    delta = naive_utc(moment) - _EPOCH
    return (delta.days * SECONDS_PER_DAY + delta.seconds) * 1_000_000 + delta.microseconds


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    raise TypeError(f"tx_datetime must be a datetime or ISO string, got {type(value).__name__}")


@readonly
class Transaction:
    """One transaction as the online feature computer needs it (:func:`~vigil.readonly.readonly`:
    one is built per decision on the API's and the stream worker's hot paths, 1.09 us as a
    frozen dataclass, 0.17 us now; timeit)."""

    transaction_id: int
    tx_datetime: datetime
    customer_id: int
    terminal_id: int
    tx_amount: float

    @property
    def ts_us(self) -> int:
        """Event time in microseconds since the epoch."""
        return epoch_us(self.tx_datetime)


@dataclass(frozen=True, slots=True)
class Label:
    """A fraud verdict for a transaction already seen (or about to be seen) by the store."""

    transaction_id: int
    customer_id: int
    terminal_id: int
    tx_datetime: datetime
    fraud: bool


def as_transaction(tx: Transaction | Mapping[str, Any]) -> Transaction:
    """Coerce a mapping with the transaction columns into a :class:`Transaction`.

    Wall-clock features use naive UTC, as the offline SQL does; the values must lie in the
    transaction contract's ranges (:func:`vigil.data.transaction.check_ranges`).
    """
    result = tx if isinstance(tx, Transaction) else _from_mapping(tx)
    moment = result.tx_datetime
    if moment.tzinfo is not None:
        result = replace(result, tx_datetime=naive_utc(moment))
    ids = (result.transaction_id, result.customer_id, result.terminal_id)
    check_ranges(ids, result.tx_amount, result.tx_datetime)
    return result


def _from_mapping(tx: Mapping[str, Any]) -> Transaction:
    try:
        return Transaction(
            transaction_id=int(tx[schema.TRANSACTION_ID]),
            tx_datetime=_as_datetime(tx[schema.TX_DATETIME]),
            customer_id=int(tx[schema.CUSTOMER_ID]),
            terminal_id=int(tx[schema.TERMINAL_ID]),
            tx_amount=float(tx[schema.TX_AMOUNT]),
        )
    except KeyError as error:
        raise ValueError(f"transaction lacks field {error.args[0]!r}") from None


@dataclass(frozen=True)
class WindowSpec:
    """Window lengths and label delay in microseconds, derived from :class:`FeaturesConfig`."""

    windows_us: tuple[int, ...]
    delay_us: int
    # customer-amount-baseline group: its recent-maximum window, 0 when the group is off
    amount_window_us: int = 0
    fraud_run: bool = False  # terminal-fraud-run group on
    verdict_window_us: int = 0  # verdict group: its window, 0 when the group is off

    @classmethod
    def from_config(cls, config: FeaturesConfig) -> WindowSpec:
        """The spec for the configured windows, label delay and extra groups."""
        baseline = fd.CUSTOMER_AMOUNT_BASELINE in config.extra
        return cls(
            tuple(n * US_PER_DAY for n in config.windows_days),
            config.label_delay_days * US_PER_DAY,
            fd.amount_window_days(config) * US_PER_DAY if baseline else 0,
            fd.TERMINAL_FRAUD_RUN in config.extra,
            config.verdict_window_days * US_PER_DAY if config.verdicts else 0,
        )

    @property
    def longest_us(self) -> int:
        """The longest window."""
        return max(self.windows_us)

    @property
    def horizon_us(self) -> int:
        """How far back any feature looks: longest window plus label delay."""
        return self.longest_us + self.delay_us


@dataclass
class Aggregates:
    """Raw window aggregates for one transaction (per window, in ``windows_us`` order)."""

    customer_count: list[int] = field(default_factory=list)
    customer_sum: list[float] = field(default_factory=list)
    terminal_count: list[int] = field(default_factory=list)
    terminal_frauds: list[int] = field(default_factory=list)
    customer_risk_count: int = 0
    customer_risk_frauds: int = 0
    prev_gap_us: int | None = None
    # customer's prior transactions (earlier instants in the longest window), when computed
    prior_count: int = 0
    prior_sum: float = 0.0
    prior_median: float | None = None
    recent_max: float | None = None  # largest prior amount in the amount window
    # earliest and latest known fraud at the terminal in the delayed longest window
    terminal_first_fraud_us: int | None = None
    terminal_last_fraud_us: int | None = None
    recorded: bool = True  # this call added the transaction (False: its id was already held)


class StateStore(Protocol):
    """Per-customer and per-terminal recent history, shared by the feature computers."""

    def record(self, txs: Sequence[Transaction], spec: WindowSpec) -> list[Aggregates]:
        """Append transactions in order (idempotent) and return each one's aggregates."""
        ...

    def add_label(self, label: Label) -> None:
        """Attach a fraud label to a recorded transaction (idempotent)."""
        ...

    def add_labels(self, labels: Sequence[Label]) -> None:
        """:meth:`add_label` for many labels at once (one round trip on Redis: warm-ups)."""
        ...

    def load(self, txs: Sequence[Transaction], labels: Sequence[Label], spec: WindowSpec) -> None:
        """A warm-up's bulk load: the state of :meth:`record` of ``txs`` (in time order) then
        :meth:`add_labels`, however it is fastest to get there."""
        ...

    async def arecord(self, txs: Sequence[Transaction], spec: WindowSpec) -> list[Aggregates]:
        """Async :meth:`record`."""
        ...

    async def aadd_label(self, label: Label) -> None:
        """Async :meth:`add_label`."""
        ...

    async def aforget(self, txs: Sequence[Transaction]) -> None:
        """Remove recorded transactions again (their storage failed: they leave no trace)."""
        ...

    def add_verdicts(self, verdicts: Sequence[Verdict], spec: WindowSpec) -> None:
        """Hold analysts' verdicts for the verdict features (latest review per transaction)."""
        ...

    async def aadd_verdicts(self, verdicts: Sequence[Verdict], spec: WindowSpec) -> None:
        """Async :meth:`add_verdicts`."""
        ...

    def verdict_aggregates(
        self, txs: Sequence[Transaction], spec: WindowSpec
    ) -> list[VerdictAggregates]:
        """What each transaction sees of the verdicts (read only; see vigil.features.verdicts)."""
        ...

    async def averdict_aggregates(
        self, txs: Sequence[Transaction], spec: WindowSpec
    ) -> list[VerdictAggregates]:
        """Async :meth:`verdict_aggregates`."""
        ...

    def ping(self) -> bool:
        """True when the store answers; raises the client's error when it cannot be reached."""
        ...

    def mark_warm(self) -> None:
        """Record that the history was replayed into this store (``vigil warm-state``)."""
        ...

    async def awarm(self) -> bool:
        """Whether the store still holds what the last warm-up put in (False after a reset)."""
        ...

    async def aping(self) -> bool:
        """Async :meth:`ping`."""
        ...

    def close(self) -> None:
        """Release synchronous connections."""
        ...

    async def aclose(self) -> None:
        """Release asynchronous connections."""
        ...


_AFTER = math.inf  # sorts after every transaction id at the same timestamp


@dataclass
class _History:
    """One entity's transactions sorted by ``(ts, id)``, with amounts and labels by id."""

    keys: list[tuple[int, int]] = field(default_factory=list)
    amounts: dict[int, float] = field(default_factory=dict)
    frauds: dict[int, int] = field(default_factory=dict)

    def add(self, ts: int, tx_id: int, amount: float) -> bool:
        """Insert the transaction unless its id is held; True when it was inserted."""
        if tx_id in self.amounts:
            return False
        insort(self.keys, (ts, tx_id))
        self.amounts[tx_id] = amount
        return True

    def eviction_time(self, ts: int) -> int:
        """``ts``, but never later than the newest transaction held before it.

        History is trimmed relative to this time, so one event with an outlying (future) time
        cannot evict the history of the events around it, and a late event evicts nothing.
        """
        return min(ts, self.keys[-1][0]) if self.keys else ts

    def remove(self, tx_id: int) -> None:
        """Forget one transaction (no-op when not held)."""
        amount = self.amounts.pop(tx_id, None)
        if amount is not None:
            self.keys = [key for key in self.keys if key[1] != tx_id]
            self.frauds.pop(tx_id, None)

    def trim(self, cutoff_us: int) -> None:
        """Forget transactions at or before ``cutoff_us``."""
        cut = bisect_right(self.keys, (cutoff_us, _AFTER))
        for _, tx_id in self.keys[:cut]:
            del self.amounts[tx_id]
            self.frauds.pop(tx_id, None)
        del self.keys[:cut]

    def after(self, ts: int) -> int:
        """Index of the first transaction strictly after instant ``ts``."""
        return bisect_right(self.keys, (ts, _AFTER))

    def ids(self, lo: int, hi: int) -> list[int]:
        return [tx_id for _, tx_id in self.keys[lo:hi]]


def _delayed(history: _History, ts: int, length_us: int, delay_us: int) -> tuple[int, int]:
    """(transactions, frauds) in ``(ts - delay - length, ts - delay]``."""
    lo, hi = history.after(ts - delay_us - length_us), history.after(ts - delay_us)
    return hi - lo, sum(history.frauds.get(i, 0) for i in history.ids(lo, hi))


def _amount_baseline(customer: _History, ts: int, spec: WindowSpec, agg: Aggregates) -> None:
    """Prior amounts: transactions at earlier instants in ``(ts - longest, ts)``."""
    lo, now = customer.after(ts - spec.longest_us), bisect_left(customer.keys, (ts, -1))
    prior = [customer.amounts[i] for i in customer.ids(lo, now)]
    if prior:
        agg.prior_count, agg.prior_sum = len(prior), sum(prior)
        agg.prior_median = statistics.median(prior)
    recent = customer.ids(max(lo, customer.after(ts - spec.amount_window_us)), now)
    agg.recent_max = max((customer.amounts[i] for i in recent), default=None)


def _fraud_run(terminal: _History, ts: int, spec: WindowSpec, agg: Aggregates) -> None:
    """Earliest and latest known fraud in the delayed longest window."""
    lo, hi = terminal.after(ts - spec.horizon_us), terminal.after(ts - spec.delay_us)
    fraud_times = [t for t, i in terminal.keys[lo:hi] if terminal.frauds.get(i, 0) > 0]
    if fraud_times:
        agg.terminal_first_fraud_us, agg.terminal_last_fraud_us = fraud_times[0], fraud_times[-1]


def _aggregate(
    customer: _History, terminal: _History, tx: Transaction, spec: WindowSpec
) -> Aggregates:
    """Window aggregates of ``tx`` from its customer's and terminal's histories."""
    ts = tx.ts_us
    upper = bisect_right(customer.keys, (ts, tx.transaction_id))
    agg = Aggregates()
    for window in spec.windows_us:
        lo = customer.after(ts - window)
        agg.customer_count.append(upper - lo)
        agg.customer_sum.append(sum(customer.amounts[i] for i in customer.ids(lo, upper)))
        count, frauds = _delayed(terminal, ts, window, spec.delay_us)
        agg.terminal_count.append(count)
        agg.terminal_frauds.append(frauds)
    agg.customer_risk_count, agg.customer_risk_frauds = _delayed(
        customer, ts, spec.longest_us, spec.delay_us
    )
    if upper >= 2:
        agg.prev_gap_us = ts - customer.keys[upper - 2][0]
    if spec.amount_window_us:
        _amount_baseline(customer, ts, spec, agg)
    if spec.fraud_run:
        _fraud_run(terminal, ts, spec, agg)
    return agg


class InMemoryStateStore:
    """The embedded store: histories in this process, guarded by one lock."""

    def __init__(self, sweep_every: int = 100_000) -> None:
        self._customers: dict[int, _History] = {}
        self._terminals: dict[int, _History] = {}
        self._lock = threading.Lock()
        self._sweep_every = sweep_every
        self._since_sweep = 0
        self._latest_us = 0
        self._verdicts = VerdictState()

    def _sweep(self, horizon_us: int) -> None:
        """Drop customers and terminals whose whole history is older than the horizon."""
        cutoff = self._latest_us - horizon_us
        for histories in (self._customers, self._terminals):
            silent = [key for key, h in histories.items() if not h.keys or h.keys[-1][0] <= cutoff]
            for key in silent:
                del histories[key]
        self._since_sweep = 0

    def _record_one(self, tx: Transaction, spec: WindowSpec) -> Aggregates:
        ts = tx.ts_us
        known = self._customers.get(tx.customer_id)
        self._latest_us = max(self._latest_us, known.eviction_time(ts) if known else ts)
        self._since_sweep += 1
        if self._since_sweep >= self._sweep_every:
            self._sweep(spec.horizon_us)
        customer = self._customers.setdefault(tx.customer_id, _History())
        terminal = self._terminals.setdefault(tx.terminal_id, _History())
        for history in (customer, terminal):
            history.trim(history.eviction_time(ts) - spec.horizon_us)
        added = customer.add(ts, tx.transaction_id, tx.tx_amount)
        terminal.add(ts, tx.transaction_id, tx.tx_amount)
        agg = _aggregate(customer, terminal, tx, spec)
        agg.recorded = added  # as in the Redis store, the customer's history decides
        return agg

    def record(self, txs: Sequence[Transaction], spec: WindowSpec) -> list[Aggregates]:
        """Append transactions in order (idempotent) and return each one's aggregates."""
        with self._lock:
            return [self._record_one(tx, spec) for tx in txs]

    def add_label(self, label: Label) -> None:
        """Attach a fraud label to the transaction if its histories still hold it."""
        with self._lock:
            for histories, key in (
                (self._customers, label.customer_id),
                (self._terminals, label.terminal_id),
            ):
                history = histories.get(key)
                if history is not None and label.transaction_id in history.amounts:
                    history.frauds[label.transaction_id] = int(label.fraud)

    def add_labels(self, labels: Sequence[Label]) -> None:
        """:meth:`add_label` for each label in order."""
        for label in labels:
            self.add_label(label)

    def load(self, txs: Sequence[Transaction], labels: Sequence[Label], spec: WindowSpec) -> None:
        """Record ``txs`` then add ``labels`` (in-process: nothing faster to do)."""
        self.record(txs, spec)
        self.add_labels(labels)

    async def arecord(self, txs: Sequence[Transaction], spec: WindowSpec) -> list[Aggregates]:
        """Async :meth:`record` (in-process: no I/O to wait for)."""
        return self.record(txs, spec)

    async def aadd_label(self, label: Label) -> None:
        """Async :meth:`add_label`."""
        self.add_label(label)

    async def aforget(self, txs: Sequence[Transaction]) -> None:
        """Remove recorded transactions again (their storage failed)."""
        with self._lock:
            for tx in txs:
                for histories, key in (
                    (self._customers, tx.customer_id),
                    (self._terminals, tx.terminal_id),
                ):
                    history = histories.get(key)
                    if history is not None:
                        history.remove(tx.transaction_id)

    def add_verdicts(self, verdicts: Sequence[Verdict], spec: WindowSpec) -> None:
        """Hold verdicts while their transactions are within the verdict window plus the delay."""
        horizon = spec.verdict_window_us + spec.delay_us
        with self._lock:
            for verdict in verdicts:
                times = epoch_us(verdict.tx_datetime), epoch_us(verdict.reviewed_at)
                self._verdicts.add(verdict, *times, horizon)

    async def aadd_verdicts(self, verdicts: Sequence[Verdict], spec: WindowSpec) -> None:
        """Async :meth:`add_verdicts`."""
        self.add_verdicts(verdicts, spec)

    def verdict_aggregates(
        self, txs: Sequence[Transaction], spec: WindowSpec
    ) -> list[VerdictAggregates]:
        """What each transaction sees of the verdicts reviewed before it."""
        with self._lock:
            return [
                self._verdicts.aggregates(
                    tx.customer_id, tx.terminal_id, tx.ts_us, spec.verdict_window_us
                )
                for tx in txs
            ]

    async def averdict_aggregates(
        self, txs: Sequence[Transaction], spec: WindowSpec
    ) -> list[VerdictAggregates]:
        """Async :meth:`verdict_aggregates`."""
        return self.verdict_aggregates(txs, spec)

    def ping(self) -> bool:
        """The in-process store is always reachable."""
        return True

    def mark_warm(self) -> None:
        """Nothing to record: the in-process store lives and dies with its process."""

    async def awarm(self) -> bool:
        """Always True: no other process can reset it behind this one's back."""
        return True

    async def aping(self) -> bool:
        """The in-process store is always reachable."""
        return True

    def close(self) -> None:
        """Nothing to release."""

    async def aclose(self) -> None:
        """Nothing to release."""


def make_state_store(url: str, prefix: str = "vigil:features") -> StateStore:
    """The store a URL names.

    ``memory://`` is the in-process store, ``redis://host:port/db`` the shared Redis store and
    ``redis+cluster://host:port`` the same on Redis Cluster (any node; the rest are discovered).
    """
    if url.startswith("memory://"):
        return InMemoryStateStore()
    schemes = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")
    if url.startswith(schemes):
        from vigil.features.redis_state import RedisStateStore

        return RedisStateStore(url, prefix=prefix)
    raise ValueError(
        f"unknown state store URL {url!r}: use memory://, redis://host:port/db"
        " or redis+cluster://host:port"
    )
