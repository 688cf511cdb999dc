"""The day's case queue: cards ranked by their highest score, as many as the team reviews.

A case is one card (``customer_id``) on one event-time day: its scored transactions of the
day with scores and reason codes, each amount against the card's habit (its mean amount
over the ``cases.habit_days`` before the day), each terminal's known fraud run (frauds known
now at that terminal over the ``cases.fraud_run_days`` before the day's end, and whether an
analyst marked it compromised) and the verdicts given so far; one card's case also shows its
transactions of the look-back (:func:`lookback_bounds`) that have no label yet, which its
verdict labels too. The queue is ``budget`` cards (the k of CP@k) chosen by the review rule
(:mod:`vigil.cases.rule`, the evaluation's simulated investigator's too): the cards reviewed that
day, then the best cards by their highest score, leaving out those known compromised in the
``cases.block_days`` before the day's start; its precision is the share of reviewed cards found
fraud, i.e. the live CP@k of the cards reviewed so far.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

from sqlalchemy import Connection

from vigil.cases.ranking import Ranked
from vigil.cases.rule import block_window
from vigil.config import CasesConfig
from vigil.data.transaction import naive_utc
from vigil.storage.case_copy import days_between, sync_days
from vigil.storage.cases import (
    card_habits,
    card_transactions,
    compromised_terminals,
    newest_event_time,
    terminal_fraud_times,
    top_cards,
)
from vigil.storage.records import utc_now

CaseStatus = Literal["open", "reviewed"]
Verdict = Literal["fraud", "legit"]


class CaseNotFound(LookupError):
    """The card has no scored transaction on that day."""


def event_clock(connection: Connection) -> datetime:
    """Now on the transactions' clock (naive UTC): the newest stored event, never past now.

    Live, events arrive as they happen and this is the wall clock; a replayed or simulated
    world's "now" is its newest event.
    """
    now = naive_utc(utc_now())
    newest = newest_event_time(connection)
    return now if newest is None else min(newest, now)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """``[start, end)`` of an event-time day."""
    start = datetime.combine(day, time())
    return start, start + timedelta(days=1)


def lookback_bounds(day: date, lookback_days: int) -> tuple[datetime, datetime]:
    """``[start, end)`` of the card's earlier transactions a verdict on ``day`` also covers:
    the ``lookback_days`` up to the day's end, the day itself excluded (empty for 0 or 1).

    The evaluation's investigator (``vigil evaluate --feedback --lookback-days``) reviews at the
    day's end and covers the ``lookback_days`` before that review: the same transactions.
    """
    start, end = day_bounds(day)
    return min(end - timedelta(days=lookback_days), start), start


def sync_case_days(
    connection: Connection, config: CasesConfig, day: date, recheck: Literal["day", "all"] | None
) -> int:
    """Bring the queue's copy (:mod:`vigil.storage.case_copy`) of the days a case of ``day``
    reads (its habit, fraud run and look-back) up to date: the days never copied, and also
    ``day`` itself (``recheck="day"``) or every one of them (``"all"``: the ranking's refresh,
    when late transactions of earlier days come in). Returns the rows copied or removed."""
    span = max(config.habit_days, config.fraud_run_days, config.lookback_days)
    days = days_between(day - timedelta(days=span), day)
    again = {"day": [day], "all": days, None: []}[recheck]
    return sync_days(connection, days, recheck=again)


@dataclass(frozen=True, slots=True)
class CaseTransaction:
    """One of the card's transactions of the day, with what the analyst judges it by."""

    transaction_id: int
    tx_datetime: datetime
    terminal_id: int
    tx_amount: float
    score: float
    label: int
    reason_codes: list[str]
    model_version: str
    amount_vs_habit: float | None  # amount / the card's habit mean; None without history
    terminal_frauds: int  # known frauds at the terminal in the fraud-run window
    terminal_last_fraud: datetime | None
    terminal_compromised: bool  # an analyst marked the terminal compromised
    verdict: Verdict | None
    reviewed_at: datetime | None
    analyst: str | None
    case_day: date | None  # the day of the case the verdict was given for


@dataclass(frozen=True, slots=True)
class Case:
    """One card's day: its transactions, its rank in the queue (None: outside the budget)."""

    customer_id: int
    day: date
    rank: int | None
    top_score: float
    status: CaseStatus  # reviewed: every transaction given a verdict for this day's case
    verdict: Verdict | None  # fraud when any verdict given for this day's case is fraud
    alerts: int  # transactions flagged (label 1)
    total_amount: float
    habit_mean: float | None
    habit_transactions: int
    transactions: list[CaseTransaction]
    # the card's unlabelled transactions of the look-back (one card's case only; not in a queue)
    lookback: list[CaseTransaction] = field(default_factory=list)

    @property
    def top_transaction(self) -> CaseTransaction:
        """The transaction with the card's highest score (the earliest on a tie)."""
        return max(self.transactions, key=lambda t: t.score)


@dataclass(frozen=True, slots=True)
class CaseQueue:
    """The day's queue (filtered by status) and how far its review has come."""

    day: date
    budget: int
    size: int  # cards in the day's queue (the budget; more if more were reviewed that day)
    reviewed: int  # of those, the cases with status reviewed (verdicts given for the day)
    frauds: int  # reviewed cases found fraud
    cases: list[Case]

    @property
    def precision(self) -> float | None:
        """Reviewed cards found fraud over reviewed cards: the live CP@k (None before any)."""
        return self.frauds / self.reviewed if self.reviewed else None

    def only(self, status: CaseStatus | None) -> CaseQueue:
        """The same queue listing only the cases of ``status`` (None: all)."""
        if status is None:
            return self
        return replace(self, cases=[case for case in self.cases if case.status == status])


def _verdict(is_fraud: Any) -> Verdict | None:
    if is_fraud is None:
        return None
    return "fraud" if int(is_fraud) else "legit"


def _transaction(
    row: dict[str, Any],
    habit: float | None,
    fraud_times: Sequence[datetime],
    compromised: bool,
) -> CaseTransaction:
    return CaseTransaction(
        transaction_id=int(row["transaction_id"]),
        tx_datetime=row["tx_datetime"],
        terminal_id=int(row["terminal_id"]),
        tx_amount=float(row["tx_amount"]),
        score=float(row["score"]),
        label=int(row["label"]),
        reason_codes=list(row["reason_codes"] or []),
        model_version=str(row["model_version"]),
        amount_vs_habit=float(row["tx_amount"]) / habit if habit else None,
        terminal_frauds=len(fraud_times),
        terminal_last_fraud=max(fraud_times, default=None),
        terminal_compromised=compromised,
        verdict=_verdict(row["is_fraud"]),
        reviewed_at=row["reviewed_at"],
        analyst=row["analyst"],
        case_day=row["case_day"],
    )


def _case(
    customer_id: int,
    day: date,
    rank: int | None,
    txs: list[CaseTransaction],
    habit: tuple[float, int] | None,
) -> Case:
    # the verdicts given for this day's case (:mod:`vigil.cases.rule`), not those of a later
    # day's look-back that labelled its transactions too: a past day stays as it was worked
    verdicts = [t.verdict for t in txs if t.verdict is not None and t.case_day == day]
    return Case(
        customer_id=customer_id,
        day=day,
        rank=rank,
        top_score=max(t.score for t in txs),
        status="reviewed" if len(verdicts) == len(txs) else "open",
        verdict=("fraud" if "fraud" in verdicts else "legit") if verdicts else None,
        alerts=sum(t.label for t in txs),
        total_amount=sum(t.tx_amount for t in txs),
        habit_mean=habit[0] if habit else None,
        habit_transactions=habit[1] if habit else 0,
        transactions=txs,
    )


def _by_card(
    rows: Sequence[dict[str, Any]],
    habits: dict[int, tuple[float, int]],
    fraud_times: dict[int, list[datetime]],
    compromised: set[int],
) -> dict[int, list[CaseTransaction]]:
    """The case transactions of ``rows`` by card, in the rows' order."""
    cards: dict[int, list[CaseTransaction]] = {}
    for row in rows:
        customer, terminal = int(row["customer_id"]), int(row["terminal_id"])
        habit = habits.get(customer)
        cards.setdefault(customer, []).append(
            _transaction(
                row,
                habit[0] if habit else None,
                fraud_times.get(terminal, []),
                terminal in compromised,
            )
        )
    return cards


def _cases(
    connection: Connection,
    config: CasesConfig,
    day: date,
    ranked: Sequence[tuple[int, int | None]],
    lookback: bool = False,
    recheck: Literal["day", "all"] | None = "day",
) -> list[Case]:
    """The cases of the ``(customer, rank)`` pairs in that order (cards without rows: none);
    ``lookback``: with the cards' unlabelled transactions of the look-back; ``recheck``: the
    days of the queue's copy checked first (:func:`sync_case_days`)."""
    sync_case_days(connection, config, day, recheck)
    start, end = day_bounds(day)
    customers = [customer for customer, _ in ranked]
    rows = card_transactions(connection, customers, start, end)
    earlier: list[dict[str, Any]] = []
    if lookback:
        since, until = lookback_bounds(day, config.lookback_days)
        earlier = card_transactions(connection, customers, since, until, unlabelled=True)
    habits = card_habits(connection, customers, start - timedelta(days=config.habit_days), start)
    terminals = sorted({int(row["terminal_id"]) for row in rows + earlier})
    run_start = end - timedelta(days=config.fraud_run_days)
    fraud_times = terminal_fraud_times(connection, terminals, run_start, end)
    compromised = compromised_terminals(connection, terminals, event_clock(connection))
    today_by_card = _by_card(rows, habits, fraud_times, compromised)
    earlier_by_card = _by_card(earlier, habits, fraud_times, compromised)
    return [
        replace(
            _case(customer, day, rank, today_by_card[customer], habits.get(customer)),
            lookback=earlier_by_card.get(customer, []),
        )
        for customer, rank in ranked
        if customer in today_by_card
    ]


def today(connection: Connection) -> date:
    """Today's date on the event clock (the queue's default day)."""
    return event_clock(connection).date()


def rank_day(
    connection: Connection, config: CasesConfig, day: date, budget: int, delay_days: int
) -> Ranked:
    """The queue of ``day``, ``budget`` cards: (customer, top score), best first, by the review
    rule (:mod:`vigil.cases.rule`): the cards reviewed that day, then the best open ones,
    leaving out the cards known compromised (``config.block_days``, ``delay_days`` the label
    delay) at the day's start."""
    start, end = day_bounds(day)
    block = block_window(start, config.block_days)
    return top_cards(connection, start, end, budget, block, timedelta(days=delay_days))


def day_queue(
    connection: Connection,
    config: CasesConfig,
    day: date,
    budget: int,
    ranked: Ranked,
    status: CaseStatus | None = None,
    recheck: Literal["day", "all"] | None = "day",
) -> CaseQueue:
    """The queue of ``day`` (``budget`` cards chosen by :func:`rank_day`), ``status`` only;
    ``recheck``: the days of the queue's copy checked first (:func:`sync_case_days`)."""
    ranks = [(customer, rank) for rank, (customer, _) in enumerate(ranked, 1)]
    cases = _cases(connection, config, day, ranks, recheck=recheck)
    reviewed = [case for case in cases if case.status == "reviewed"]
    return CaseQueue(
        day=day,
        budget=budget,
        size=len(cases),
        reviewed=len(reviewed),
        frauds=sum(case.verdict == "fraud" for case in reviewed),
        cases=cases,
    ).only(status)


def card_case(
    connection: Connection, config: CasesConfig, customer_id: int, day: date, ranked: Ranked
) -> Case:
    """One card's case on ``day``, with its rank in ``ranked`` (None: outside the queue) and
    its unlabelled transactions of the look-back (which a verdict labels too).

    Raises :class:`CaseNotFound` when the card has no scored transaction that day.
    """
    ranks = [customer for customer, _ in ranked]
    rank = ranks.index(customer_id) + 1 if customer_id in ranks else None
    # The copy of its days as the ranking (or the day's queue) last checked it: a card's read
    # does not count the day's transactions again, unless the card is not found in the copy.
    found = _cases(connection, config, day, [(customer_id, rank)], lookback=True, recheck=None)
    if not found:
        found = _cases(connection, config, day, [(customer_id, rank)], lookback=True)
    if not found:
        raise CaseNotFound(f"card {customer_id} has no scored transaction on {day.isoformat()}")
    return found[0]
