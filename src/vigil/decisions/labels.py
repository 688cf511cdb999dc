"""The one label path: verdicts stored, then fed into the online fraud state (both idempotent).

Labels arrive on the ``labels`` queue (stream worker, in-process replay) or with uploaded
training data (``PUT /add_data``). Either way they are written to the ``labels`` table (the
delayed-label performance mart reads it) and then given to the state store, which applies a
verdict only to a transaction it holds and uses it only for windows older than the label
delay, so point-in-time correctness is kept there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from functools import partial

from sqlalchemy import Engine

from vigil.decisions.pipeline import Guard, run_once
from vigil.features import Label, OnlineFeatureComputer
from vigil.storage import LabelRecord, fetch_labels, insert_labels
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


def store_uploaded_verdicts(engine: Engine, labels: Sequence[Label]) -> None:
    """Store uploaded verdicts before their training data is written (``TrainingData.append``'s
    hook): a retry of an upload that failed part-way then finds them (a label is final)."""
    with engine.begin() as connection:
        insert_labels(connection, uploaded_label_records(labels))


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
