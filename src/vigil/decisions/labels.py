"""The one label path: verdicts stored, then fed into the online fraud state (both idempotent).

Labels arrive on the ``labels`` queue (stream worker, in-process replay), with uploaded
training data (``PUT /add_data``) or as analysts' case verdicts (``POST /cases/{card}/verdict``,
also logged in the ``verdicts`` table with their review time). Either way they are written to
the ``labels`` table (the delayed-label performance mart reads it) and then given to the state
store, which applies a verdict only to a transaction it holds and uses it only for windows
older than the label delay, so point-in-time correctness is kept there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from functools import partial
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine

from vigil.cases.queue import CaseNotFound, day_bounds, event_clock, lookback_bounds
from vigil.data import schema
from vigil.data.transaction import naive_utc
from vigil.decisions.idempotency import PAYLOAD, TransactionConflict
from vigil.decisions.pipeline import Guard, run_once
from vigil.features import Label, OnlineFeatureComputer
from vigil.features.replay import as_labels
from vigil.features.verdicts import Verdict
from vigil.storage import LabelRecord, fetch_labels, fetch_transactions, insert_labels
from vigil.storage.case_copy import days_between, sync_days
from vigil.storage.cases import (
    VerdictRecord,
    card_transactions,
    insert_verdicts,
    logged_verdict,
)
from vigil.storage.records import utc_now
from vigil.storage.store import DecisionStore


def _as_datetime(value: object) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
    return value


def uploaded_label_records(labels: Sequence[Label]) -> list[LabelRecord]:
    """Records for verdicts that came with training data: ``labelled_at`` = now (naive UTC).

    An upload does not say when each verdict was made, so it counts from when it reached Vigil.
    """
    received = utc_now()
    labelled_at = received.replace(tzinfo=None)  # the column is naive UTC, like the queue's
    return [LabelRecord(v.transaction_id, int(v.fraud), labelled_at, received) for v in labels]


def _payload_conflict(connection: Connection, rows: pd.DataFrame) -> TransactionConflict | None:
    """The first row naming a stored (scored) transaction with another time, card, terminal
    or amount: its verdict would label a payment the row does not describe."""
    uploaded = rows.set_index(schema.TRANSACTION_ID)
    stored_ids = [int(i) for i in uploaded.index]
    for stored in fetch_transactions(connection, stored_ids):
        row = uploaded.loc[stored[schema.TRANSACTION_ID]]
        differing = [name for name in PAYLOAD if row[name] != stored[name]]
        if differing:
            return TransactionConflict(int(stored[schema.TRANSACTION_ID]), differing)
    return None


def store_uploaded_verdicts(engine: Engine, rows: pd.DataFrame) -> None:
    """Store the verdicts of uploaded rows before their training data is written
    (``TrainingData.append``'s hook): a retry of an upload that failed part-way then finds them
    (a label is final). A row whose id is a scored transaction with another payload refuses
    the whole upload (:class:`TransactionConflict`, 409, nothing stored): a transaction id
    is decided once (ADR 0016)."""
    with engine.begin() as connection:
        conflict = _payload_conflict(connection, rows)
        if conflict is not None:
            raise conflict
        insert_labels(connection, uploaded_label_records(as_labels(rows)))


def stored_verdicts(engine: Engine, labels: Sequence[Label]) -> list[Label]:
    """``labels`` that have a stored verdict, with that verdict (the first one stays)."""
    with engine.connect() as connection:
        verdicts = fetch_labels(connection, [label.transaction_id for label in labels])
    return [
        replace(label, fraud=bool(verdicts[label.transaction_id]))
        for label in labels
        if label.transaction_id in verdicts
    ]


async def record_labels(
    store: DecisionStore,
    features: OnlineFeatureComputer,
    records: Sequence[LabelRecord],
    uploaded: Sequence[Label] = (),
    guard: Guard = run_once,
    observe_state_seconds: Callable[[float], None] | None = None,
) -> None:
    """Store ``records`` (a label is final: a repeat changes nothing), then feed the state.

    A verdict reaches the state store with its transaction's keys: those of the stored
    transaction, or of ``uploaded`` (verdicts carrying their transaction, as training data
    does). ``observe_state_seconds`` receives each state update's duration, retries included.
    """
    rows = await guard(lambda: store.save_labels(records), "saving labels")
    frauds = {r.transaction_id: bool(r.tx_fraud) for r in records}
    verdicts = {label.transaction_id: label for label in uploaded}
    for row in rows:
        transaction_id = int(row["transaction_id"])
        verdicts.setdefault(
            transaction_id,
            Label(
                transaction_id,
                int(row["customer_id"]),
                int(row["terminal_id"]),
                _as_datetime(row["tx_datetime"]),
                frauds[transaction_id],
            ),
        )
    for label in verdicts.values():
        started = time.perf_counter()
        await guard(partial(features.store.aadd_label, label), "updating label state")
        if observe_state_seconds is not None:
            observe_state_seconds(time.perf_counter() - started)


class VerdictConflict(Exception):
    """The case was already reviewed with a different verdict (a label is final)."""


class VerdictRejected(ValueError):
    """A verdict that does not fit its case (unknown transaction ids, review before the events).

    ``field`` names the verdict's field at fault.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class CaseVerdict:
    """An analyst's verdict on a card's day; ``reviewed_at`` None: now on the event clock.

    The verdict covers the card's transactions of the day and its unlabelled transactions of
    the look-back (:func:`~vigil.cases.queue.lookback_bounds`). ``fraud_transaction_ids``
    (only with ``fraud``) names the fraudulent ones; the others are then legitimate.
    ``terminal_compromised`` marks the terminals of the fraudulent transactions, or only of
    ``compromised_transaction_ids`` among them (a terminal-compromise fraud next to others).
    """

    customer_id: int
    day: date | None
    fraud: bool
    analyst: str
    terminal_compromised: bool = False
    note: str | None = None
    fraud_transaction_ids: frozenset[int] | None = None
    reviewed_at: datetime | None = None
    compromised_transaction_ids: frozenset[int] | None = None


@dataclass(frozen=True, slots=True)
class VerdictOutcome:
    """What a verdict wrote: ``stored`` are new verdict rows (empty for an identical repeat),
    ``logged`` every verdict of the card's day and look-back now (those stored before
    included)."""

    customer_id: int
    day: date
    stored: list[VerdictRecord]
    logged: list[VerdictRecord]
    repeated: bool
    top_received_at: datetime  # when the card's top-scored transaction of the day arrived


def _is_fraud(verdict: CaseVerdict, transaction_id: int) -> bool:
    if not verdict.fraud:
        return False
    chosen = verdict.fraud_transaction_ids
    return chosen is None or transaction_id in chosen


def _marks_terminal(verdict: CaseVerdict, transaction_id: int) -> bool:
    """Whether the verdict marks this transaction's terminal compromised."""
    if not (verdict.terminal_compromised and _is_fraud(verdict, transaction_id)):
        return False
    chosen = verdict.compromised_transaction_ids
    return chosen is None or transaction_id in chosen


def _verdict_records(
    rows: Sequence[dict[str, Any]], verdict: CaseVerdict, day: date, reviewed_at: datetime
) -> list[VerdictRecord]:
    """Verdict rows for the case's transactions not reviewed yet (the case of ``day``)."""
    records = []
    for row in rows:
        if row["is_fraud"] is not None:
            continue
        if row["tx_datetime"] > reviewed_at:
            raise VerdictRejected(
                "reviewed_at",
                f"reviewed_at {reviewed_at.isoformat()} is before transaction "
                f"{row['transaction_id']} ({row['tx_datetime'].isoformat()})",
            )
        transaction_id = int(row["transaction_id"])
        fraud = _is_fraud(verdict, transaction_id)
        records.append(
            VerdictRecord(
                transaction_id=transaction_id,
                customer_id=int(row["customer_id"]),
                terminal_id=int(row["terminal_id"]),
                tx_datetime=row["tx_datetime"],
                is_fraud=fraud,
                terminal_compromised=_marks_terminal(verdict, transaction_id),
                reviewed_at=reviewed_at,
                analyst=verdict.analyst,
                case_day=day,
                note=verdict.note,
            )
        )
    return records


def _agrees(rows: Sequence[dict[str, Any]], verdict: CaseVerdict) -> bool:
    """Whether the stored verdicts of ``rows`` are what ``verdict`` would write."""
    return all(
        bool(row["is_fraud"]) == _is_fraud(verdict, int(row["transaction_id"]))
        and bool(row["terminal_compromised"])
        == _marks_terminal(verdict, int(row["transaction_id"]))
        for row in rows
    )


def _review_time(connection: Connection, verdict: CaseVerdict, latest: datetime) -> datetime:
    """The verdict's review time: as given (never in the future), else now on the event clock
    but not before the case's latest transaction."""
    if verdict.reviewed_at is None:
        return max(event_clock(connection), latest)
    given = naive_utc(verdict.reviewed_at)
    if given > naive_utc(utc_now()):
        raise VerdictRejected("reviewed_at", f"{given.isoformat()} is in the future")
    return given


def write_verdict(
    connection: Connection, verdict: CaseVerdict, lookback_days: int
) -> VerdictOutcome:
    """In one database transaction: the verdict log rows and the labels of the card's day and
    of its unlabelled transactions of the ``lookback_days`` (:func:`lookback_bounds`), every
    row with the case's day (``case_day``: the card is reviewed on that day's queue).

    Transactions reviewed or labelled before keep their verdict; a repeat that agrees on the
    day writes nothing (``repeated``), one that disagrees raises :class:`VerdictConflict`.
    """
    day = verdict.day if verdict.day is not None else event_clock(connection).date()
    start, end = day_bounds(day)
    since, until = lookback_bounds(day, lookback_days)
    # the labels cover what is stored now: the copy of every day they cover is rechecked
    covered = days_between(since.date(), day)
    sync_days(connection, covered, recheck=covered)
    window = card_transactions(connection, [verdict.customer_id], since, end)
    rows = [row for row in window if row["tx_datetime"] >= start]
    if not rows:
        raise CaseNotFound(
            f"card {verdict.customer_id} has no scored transaction on {day.isoformat()}"
        )
    earlier = card_transactions(connection, [verdict.customer_id], since, until, unlabelled=True)
    # any of the window's: a repeat names the look-back transactions its first verdict labelled
    known = {int(row["transaction_id"]) for row in window}
    for name in ("fraud_transaction_ids", "compromised_transaction_ids"):
        unknown = sorted((getattr(verdict, name) or frozenset()) - known)
        if unknown:
            raise VerdictRejected(
                name, f"transactions {unknown} are not in the card's case of {day}"
            )
    named = verdict.compromised_transaction_ids or frozenset()
    if verdict.fraud_transaction_ids is not None and not named <= verdict.fraud_transaction_ids:
        raise VerdictRejected(
            "compromised_transaction_ids",
            f"transactions {sorted(named - verdict.fraud_transaction_ids)} are not named fraud",
        )
    reviewed_at = _review_time(connection, verdict, max(row["tx_datetime"] for row in rows))
    records = _verdict_records(earlier + rows, verdict, day, reviewed_at)
    stored_ids = set(insert_verdicts(connection, records))
    stored = [r for r in records if r.transaction_id in stored_ids]
    insert_labels(
        connection,
        [LabelRecord(r.transaction_id, int(r.is_fraud), r.reviewed_at) for r in stored],
    )
    top = max(rows, key=lambda row: row["score"])
    now = card_transactions(connection, [verdict.customer_id], since, end)
    reviewed = [row for row in now if row["is_fraud"] is not None]
    # the day decides a conflict (raising rolls back the look-back's labels too)
    reviewed_today = [row for row in reviewed if row["tx_datetime"] >= start]
    stored_today = [r for r in stored if r.tx_datetime >= start]
    if not stored_today and not _agrees(reviewed_today, verdict):
        raise VerdictConflict(
            f"card {verdict.customer_id} was already reviewed on {day} with another verdict"
        )
    logged = [logged_verdict(row) for row in reviewed]
    return VerdictOutcome(verdict.customer_id, day, stored, logged, not stored, top["received_at"])


async def record_verdict(
    store: DecisionStore,
    features: OnlineFeatureComputer,
    verdict: CaseVerdict,
    lookback_days: int,
) -> VerdictOutcome:
    """Write the verdict (:func:`write_verdict`), then feed the verdicts of the card's day and
    look-back to the state store: as labels, and as verdicts for the verdict features.

    A verdict is a label like any other: the delayed-label features see it once it is older
    than the label delay; the verdict features see it from its review time on (ADR 0017).
    Every verdict of the day and look-back goes to the state, the earlier ones too (the state
    is idempotent): a repeat after a state-store failure completes the update.
    """
    outcome: VerdictOutcome = await store.run_in_transaction(
        partial(write_verdict, verdict=verdict, lookback_days=lookback_days)
    )
    for record in outcome.logged:
        label = Label(
            record.transaction_id,
            record.customer_id,
            record.terminal_id,
            record.tx_datetime,
            record.is_fraud,
        )
        await features.store.aadd_label(label)
    await features.aadd_verdicts(
        [
            Verdict(
                r.transaction_id,
                r.customer_id,
                r.terminal_id,
                r.tx_datetime,
                r.is_fraud,
                r.terminal_compromised,
                r.reviewed_at,
            )
            for r in outcome.logged
        ]
    )
    return outcome
