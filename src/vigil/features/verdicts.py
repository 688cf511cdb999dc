"""Verdict features: analysts' verdicts count as soon as they are given, without label delay.

A verdict says whether one transaction was a fraud and, for a fraud, whether the analyst
marked its terminal compromised. It is known from its ``reviewed_at`` on: a transaction at
time ``t`` sees the verdicts reviewed strictly before ``t`` on transactions of its terminal
(or its customer) in ``(t - W, t]``, ``W = features.verdict_window_days``; of several
verdicts on one transaction the latest reviewed before ``t`` counts (ties: the later to
arrive). Online a later review replaces the held one, so verdicts must reach the store in
review order (they do: a verdict is recorded when it is given).

The features (names in :func:`vigil.features.definitions.verdict_feature_names`): the
terminal's reviewed transactions, confirmed frauds and their share (0 when none was
reviewed), frauds whose terminal was marked compromised, days since the earliest such fraud
(0 when none); the customer's reviewed transactions, confirmed frauds and their share.

Offline they come from a verdict log (one DuckDB query, :mod:`vigil.features.verdict_sql`);
online from the state store (:class:`VerdictState` in process, the Redis store's verdict
scripts), both reduced to :class:`VerdictAggregates` and turned into values by
:func:`verdict_values`, so the formulas exist once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from vigil.data import schema
from vigil.features.definitions import SECONDS_PER_DAY

US_PER_DAY = SECONDS_PER_DAY * 1_000_000
REVIEWED_AT = "reviewed_at"
TERMINAL_COMPROMISED = "terminal_compromised"
# The verdict log: one row per verdict on one transaction.
VERDICT_COLUMNS: tuple[str, ...] = (
    schema.TRANSACTION_ID,
    schema.CUSTOMER_ID,
    schema.TERMINAL_ID,
    schema.TX_DATETIME,
    schema.TX_FRAUD,
    TERMINAL_COMPROMISED,
    REVIEWED_AT,
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """An analyst's verdict on one transaction, known from ``reviewed_at`` on."""

    transaction_id: int
    customer_id: int
    terminal_id: int
    tx_datetime: datetime
    fraud: bool
    terminal_compromised: bool
    reviewed_at: datetime


@dataclass(frozen=True, slots=True)
class VerdictAggregates:
    """Counts over the verdicts one transaction sees (see the module docstring)."""

    terminal_reviewed: int = 0
    terminal_frauds: int = 0
    terminal_compromised: int = 0
    terminal_first_compromised_us: int | None = None
    customer_reviewed: int = 0
    customer_frauds: int = 0


def verdict_values(ts_us: int, agg: VerdictAggregates) -> list[float]:
    """Feature values in :func:`~vigil.features.definitions.verdict_feature_names` order."""
    first = agg.terminal_first_compromised_us
    return [
        float(agg.terminal_reviewed),
        float(agg.terminal_frauds),
        agg.terminal_frauds / agg.terminal_reviewed if agg.terminal_reviewed else 0.0,
        float(agg.terminal_compromised),
        0.0 if first is None else (ts_us - first) / float(US_PER_DAY),
        float(agg.customer_reviewed),
        float(agg.customer_frauds),
        agg.customer_frauds / agg.customer_reviewed if agg.customer_reviewed else 0.0,
    ]


@dataclass(frozen=True, slots=True)
class _Held:
    ts_us: int
    fraud: bool
    compromised: bool
    reviewed_us: int


@dataclass
class _EntityVerdicts:
    by_id: dict[int, _Held] = field(default_factory=dict)

    def put(self, tx_id: int, held: _Held, cutoff_us: int) -> None:
        current = self.by_id.get(tx_id)
        if current is None or current.reviewed_us <= held.reviewed_us:
            self.by_id[tx_id] = held
        for old in [i for i, h in self.by_id.items() if h.ts_us <= cutoff_us]:
            del self.by_id[old]

    def seen(self, ts_us: int, window_us: int) -> list[_Held]:
        return [
            h
            for h in self.by_id.values()
            if ts_us - window_us < h.ts_us <= ts_us and h.reviewed_us < ts_us
        ]


class VerdictState:
    """The in-process verdict state: per customer and per terminal, the held verdicts.

    A verdict is kept while its transaction is within the window plus ``slack_us`` of the
    newest review (late transactions up to ``slack_us`` still see it).
    """

    def __init__(self) -> None:
        self._customers: dict[int, _EntityVerdicts] = {}
        self._terminals: dict[int, _EntityVerdicts] = {}

    def add(self, verdict: Verdict, ts_us: int, reviewed_us: int, horizon_us: int) -> None:
        """Hold a verdict (a later review of the same transaction replaces an earlier one).

        ``ts_us`` and ``reviewed_us`` are the verdict's two times in epoch microseconds.
        """
        compromised = bool(verdict.fraud and verdict.terminal_compromised)
        held = _Held(ts_us, bool(verdict.fraud), compromised, reviewed_us)
        cutoff = reviewed_us - horizon_us
        for entities, key in (
            (self._customers, verdict.customer_id),
            (self._terminals, verdict.terminal_id),
        ):
            entities.setdefault(key, _EntityVerdicts()).put(verdict.transaction_id, held, cutoff)

    def aggregates(
        self, customer_id: int, terminal_id: int, ts_us: int, window_us: int
    ) -> VerdictAggregates:
        """What a transaction of this customer at this terminal at ``ts_us`` sees."""
        empty = _EntityVerdicts()
        term = self._terminals.get(terminal_id, empty).seen(ts_us, window_us)
        cust = self._customers.get(customer_id, empty).seen(ts_us, window_us)
        compromised = [h.ts_us for h in term if h.compromised]
        return VerdictAggregates(
            terminal_reviewed=len(term),
            terminal_frauds=sum(h.fraud for h in term),
            terminal_compromised=len(compromised),
            terminal_first_compromised_us=min(compromised, default=None),
            customer_reviewed=len(cust),
            customer_frauds=sum(h.fraud for h in cust),
        )
