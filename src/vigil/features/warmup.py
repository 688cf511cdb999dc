"""Warm an online state store from a dataset: what it would hold had it been live all along.

A Redis state store keeps nothing on disk, and a new layout (ADR 0010) starts empty, so a new
or restarted store needs the recent past before its features are right. Only the horizon
matters (longest window plus label delay): the transactions of that many days before
``until`` are recorded in event order, then the labels a live store would know by then
(transactions at least the label delay old) are applied, genuine ones included so that a
relabelled transaction ends right. Recording and labels are idempotent, so warming a store
that already holds part of that history is safe: the automatic recovery after a Redis restart
or failover (:mod:`vigil.decisions.recovery`) re-warms from the database with these functions
while live traffic goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from vigil.data import schema
from vigil.features.online import OnlineFeatureComputer
from vigil.features.replay import as_labels, as_transactions, in_event_order
from vigil.features.state import Label

if TYPE_CHECKING:
    from sqlalchemy import Connection, Select

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
"""Called with the number of transactions or labels just processed."""


@dataclass(frozen=True)
class WarmupPlan:
    """What a warm-up will do: the window and how many transactions and labels it covers."""

    since: datetime
    until: datetime
    transactions: int
    labels: int


def _window(
    computer: OnlineFeatureComputer, frame: pd.DataFrame, until: datetime | None
) -> tuple[datetime, datetime, pd.DataFrame]:
    """The transactions within the store's horizon before ``until``, in event order."""
    times = frame[schema.TX_DATETIME]
    end = until or (times.max().to_pydatetime() + timedelta(microseconds=1))
    horizon = timedelta(microseconds=computer.spec.horizon_us)
    since = end - horizon
    return since, end, in_event_order(frame[(times > since) & (times < end)])


def _due_labels(
    computer: OnlineFeatureComputer, window: pd.DataFrame, until: datetime, pending: bool = False
) -> pd.DataFrame:
    """Labelled transactions old enough for their label to be known at ``until`` (every
    labelled one if ``pending``; none when the data carries no labels)."""
    if schema.TX_FRAUD not in window:
        return window.iloc[0:0].assign(**{schema.TX_FRAUD: pd.Series(dtype="int8")})
    window = window[window[schema.TX_FRAUD].notna()]  # stored rows without a label yet
    if pending:
        return window
    delay = timedelta(days=computer.config.label_delay_days)
    return window[window[schema.TX_DATETIME] + delay <= until]


def _read_stored(
    database_url: str, window: Callable[[Connection], list[Select[Any]]]
) -> pd.DataFrame:
    """The stored transactions that the queries ``window(connection)`` select (each over
    ``transactions`` outer-joined with ``labels``), with their labels (``tx_fraud``: missing
    where none is stored yet), each transaction once."""
    from vigil.storage.engine import create_db_engine

    engine = create_db_engine(database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            frames = [pd.read_sql(query, connection) for query in window(connection)]
    finally:
        engine.dispose()
    found = [f for f in frames if not f.empty] or frames[:1]  # concat warns on empty frames
    frame = pd.concat(found, ignore_index=True).drop_duplicates(schema.TRANSACTION_ID)
    frame[schema.TX_DATETIME] = pd.to_datetime(frame[schema.TX_DATETIME])
    frame[schema.TX_FRAUD] = frame[schema.TX_FRAUD].astype("Int8")
    return frame


_STORED_COLUMNS = ("transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount")
"""The columns of ``transactions`` a warm-up reads (with the label's ``tx_fraud``)."""


def _stored_query() -> Select[Any]:
    """Stored transactions with their labels (a select to narrow with ``where``)."""
    from sqlalchemy import select

    from vigil.storage.tables import labels, transactions

    columns = [transactions.c[name] for name in _STORED_COLUMNS]
    return select(*columns, labels.c.tx_fraud).outerjoin(
        labels, labels.c.transaction_id == transactions.c.transaction_id
    )


def _labels_received_query(connection: Connection, since: datetime) -> Select[Any]:
    """The labels received at or after ``since`` (a range of ``ix_labels_received_at``) with
    their transactions. In day partitions each transaction is read from its own partition: its
    receipt time comes from the id index (as :mod:`vigil.storage.sinks` reads records), where a
    join would find them by hashing every partition once the labels are a few thousand."""
    from sqlalchemy import column, literal_column, select, table, true

    from vigil.storage.partitions import ID_INDEX, is_partitioned
    from vigil.storage.tables import labels, transactions

    if not is_partitioned(connection):
        return _stored_query().where(labels.c.received_at >= since)
    index = table(ID_INDEX, column("transaction_id"), column("received_at"))
    row = (
        select(*[transactions.c[name] for name in _STORED_COLUMNS])
        .where(transactions.c.transaction_id == index.c.transaction_id)
        .where(transactions.c.received_at == index.c.received_at)
        .limit(literal_column("1"))  # one row (its primary key); keeps it from being flattened
        .lateral("t")
    )
    return (
        select(*[row.c[name] for name in _STORED_COLUMNS], labels.c.tx_fraud)
        .select_from(labels)
        .join(index, index.c.transaction_id == labels.c.transaction_id)
        .join(row, true())
        .where(labels.c.received_at >= since)
    )


def stored_transactions(database_url: str, horizon_us: int) -> pd.DataFrame:
    """The transactions stored in ``database_url`` within ``horizon_us`` of the newest one,
    with their labels (``tx_fraud``: missing where none is stored yet), for a warm-up that
    must catch up with live traffic: after a Redis restart the state is what the services
    stored, not only what an old dataset holds."""
    from sqlalchemy import func, select

    from vigil.storage.tables import transactions

    def window(connection: Connection) -> list[Select[Any]]:
        newest = connection.execute(select(func.max(transactions.c.tx_datetime))).scalar()
        if newest is None:
            return [_stored_query()]
        since = newest - timedelta(microseconds=horizon_us)
        return [_stored_query().where(transactions.c.tx_datetime > since)]

    return _read_stored(database_url, window)


def received_transactions(database_url: str, since: datetime) -> pd.DataFrame:
    """The transactions stored in ``database_url`` that were received at or after ``since``
    (aware UTC, the services' clock) or whose label was, with their labels: what a state
    store may have lost in a crash shortly after ``since``. On PostgreSQL the first query
    reads only the day partitions from ``since`` on (ADR 0014), the second the labels received
    since then by their index and each one's transaction from its partition."""
    from vigil.storage.tables import transactions

    def window(connection: Connection) -> list[Select[Any]]:
        return [
            _stored_query().where(transactions.c.received_at >= since),
            _labels_received_query(connection, since),
        ]

    return _read_stored(database_url, window)


def covers_horizon(database_url: str, horizon_us: int) -> bool:
    """Whether ``database_url`` holds transactions as old as the horizon before its newest:
    then a warm-up from it alone leaves the state as it would be had it been live all along."""
    from sqlalchemy import func, select

    from vigil.storage.engine import create_db_engine
    from vigil.storage.tables import transactions

    times = transactions.c.tx_datetime
    engine = create_db_engine(database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            oldest, newest = connection.execute(select(func.min(times), func.max(times))).one()
    finally:
        engine.dispose()
    return oldest is not None and newest - oldest >= timedelta(microseconds=horizon_us)


def with_stored(frame: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """``frame`` and the stored transactions it does not hold; a transaction in both takes the
    stored label, or ``frame``'s while none is stored (labels reach the database late)."""
    if stored.empty:
        return frame
    columns = [c for c in stored.columns if c in frame.columns or c == schema.TX_FRAUD]
    held = frame[schema.TRANSACTION_ID].isin(stored[schema.TRANSACTION_ID])
    ours = frame[~held]
    stored = stored[columns]
    if schema.TX_FRAUD in ours and schema.TX_FRAUD in stored:
        known = frame[held].set_index(schema.TRANSACTION_ID)[schema.TX_FRAUD].astype("Int8")
        known = known[~known.index.duplicated()]
        label = stored[schema.TX_FRAUD].astype("Int8")
        label = label.fillna(stored[schema.TRANSACTION_ID].map(known)).astype("Int8")
        stored = stored.assign(**{schema.TX_FRAUD: label})
        ours = ours.assign(**{schema.TX_FRAUD: ours[schema.TX_FRAUD].astype("Int8")})
    return pd.concat([ours, stored], ignore_index=True)


def plan_warmup(
    computer: OnlineFeatureComputer,
    frame: pd.DataFrame,
    until: datetime | None = None,
    pending_labels: bool = False,
) -> WarmupPlan:
    """The window and counts :func:`warm_state` would use (``until``: after the last row)."""
    since, end, window = _window(computer, frame, until)
    labels = _due_labels(computer, window, end, pending_labels)
    return WarmupPlan(since, end, len(window), len(labels))


def warm_state(
    computer: OnlineFeatureComputer,
    frame: pd.DataFrame,
    until: datetime | None = None,
    batch_size: int = 1_048_576,
    progress: Progress | None = None,
    pending_labels: bool = False,
    mark: bool = True,
) -> WarmupPlan:
    """Record the horizon before ``until`` into ``computer``'s store, then its known labels.

    ``frame`` holds transactions with the schema's columns (``tx_fraud`` for labels; without
    it only transactions are recorded). ``pending_labels`` also applies the labels not yet due
    at ``until``, for a replay of the data that follows: features use a label only once its
    transaction is the label delay old, so this equals each label arriving on time.
    ``batch_size`` transactions (and their labels) go to the store's bulk load at a time.
    ``mark``: set the store's warm marker afterwards (a partial re-warm leaves it as it is).
    Returns what was done.
    """
    if batch_size <= 0:
        raise ValueError("batch_size must be > 0")
    since, end, window = _window(computer, frame, until)
    txs = as_transactions(window)
    labels = _due_labels(computer, window, end, pending_labels)
    known = as_labels(labels)
    # Bulk: no windows computed, an entity's transactions of a chunk in one operation; a
    # label goes with its transaction's chunk.
    chunk_of = {tx.transaction_id: n // batch_size for n, tx in enumerate(txs)}
    by_chunk: dict[int, list[Label]] = {}
    for label in known:
        by_chunk.setdefault(chunk_of.get(label.transaction_id, -1), []).append(label)
    for start in range(0, len(txs), batch_size):
        chunk = txs[start : start + batch_size]
        computer.store.load(chunk, by_chunk.get(start // batch_size, []), computer.spec)
        if progress is not None:
            progress(len(chunk) + len(by_chunk.get(start // batch_size, [])))
    if mark:
        computer.store.mark_warm()  # /health reports "degraded" until this marker exists
    log.info("warmed the state store: %d transactions, %d labels", len(txs), len(labels))
    return WarmupPlan(since, end, len(txs), len(labels))
