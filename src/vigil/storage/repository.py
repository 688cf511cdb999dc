"""Transactions, predictions and labels: idempotent bulk writes keyed on ``transaction_id``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Select, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql.dml import Insert as PgInsert
from sqlalchemy.dialects.sqlite.dml import Insert as SqliteInsert

from vigil.storage.errors import StorageError
from vigil.storage.pg_insert import insert_records
from vigil.storage.records import LabelRecord, PredictionRecord
from vigil.storage.tables import labels, predictions, transactions


def upsertable_insert(connection: Connection, table: Table) -> PgInsert | SqliteInsert:
    """The dialect's INSERT that supports ``ON CONFLICT``."""
    name = connection.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise StorageError(f"unsupported database dialect {name!r}: use SQLite or PostgreSQL")


def _insert_ignoring_duplicates(
    connection: Connection, table: Table, rows: Sequence[dict[str, Any]]
) -> set[int]:
    """Insert ``rows``, skipping ids already stored; the ids inserted."""
    if not rows:
        return set()
    statement = (
        upsertable_insert(connection, table)
        .on_conflict_do_nothing(index_elements=["transaction_id"])
        .returning(table.c.transaction_id)
    )
    return set(connection.execute(statement, list(rows)).scalars())


def insert_prediction_records(
    connection: Connection, records: Sequence[PredictionRecord]
) -> set[int]:
    """Insert transactions and their predictions; ids already stored are left unchanged.

    Returns the ids this call inserted (an id missing from it was stored before, possibly by
    another process at the same moment). On PostgreSQL the batch is one statement with a JSON
    parameter (:mod:`vigil.storage.pg_insert`), far cheaper per row than ``executemany`` and
    the one that keeps ids unique across the day partitions; SQLite keeps the portable
    ``INSERT``.
    """
    if connection.dialect.name == "postgresql":
        if connection.dialect.driver != "psycopg":
            raise StorageError("PostgreSQL needs the psycopg (3) driver: postgresql+psycopg://")
        return insert_records(connection.connection.driver_connection, records)
    _insert_ignoring_duplicates(connection, transactions, [r.transaction_row() for r in records])
    return _insert_ignoring_duplicates(
        connection, predictions, [r.prediction_row() for r in records]
    )


def insert_labels(connection: Connection, records: Sequence[LabelRecord]) -> list[int]:
    """Store labels; a label is final, so a repeat changes nothing. Returns the new ids."""
    if not records:
        return []
    statement = (
        upsertable_insert(connection, labels)
        .on_conflict_do_nothing(index_elements=["transaction_id"])
        .returning(labels.c.transaction_id)
    )
    rows = [
        {
            "transaction_id": r.transaction_id,
            "tx_fraud": r.tx_fraud,
            "labelled_at": r.labelled_at,
            "received_at": r.received_at,
        }
        for r in records
    ]
    return [row.transaction_id for row in connection.execute(statement, rows)]


def _prediction_view() -> Any:
    """Predictions joined with their transaction's fields."""
    return select(
        predictions,
        transactions.c.tx_datetime,
        transactions.c.customer_id,
        transactions.c.terminal_id,
        transactions.c.tx_amount,
    ).join_from(
        predictions,
        transactions,
        predictions.c.transaction_id == transactions.c.transaction_id,
        isouter=True,
    )


def record_query() -> Select[Any]:
    """Every :class:`PredictionRecord` field of the stored records, columns named after them."""
    prediction_columns = [c for c in predictions.c if c.name != "transaction_id"]
    return select(*transactions.c, *prediction_columns).join_from(
        transactions,
        predictions,
        predictions.c.transaction_id == transactions.c.transaction_id,
    )


# Ids bound in one query: PostgreSQL takes at most 65,535 parameters a statement, and the
# rows of an upload (PUT /add_data) can name more transactions than that.
_IDS_PER_QUERY = 10_000


def _id_chunks(transaction_ids: Iterable[int]) -> Iterator[list[int]]:
    """The distinct ids in ascending order, ``_IDS_PER_QUERY`` at most a list."""
    ids = sorted(set(transaction_ids))
    for start in range(0, len(ids), _IDS_PER_QUERY):
        yield ids[start : start + _IDS_PER_QUERY]


def fetch_records(connection: Connection, transaction_ids: Sequence[int]) -> list[PredictionRecord]:
    """The stored records (transaction and prediction) of those ``transaction_ids`` stored."""
    query = record_query().where(transactions.c.transaction_id.in_(list(transaction_ids)))
    return [PredictionRecord(**row) for row in connection.execute(query).mappings()]


def fetch_prediction(connection: Connection, transaction_id: int) -> dict[str, Any] | None:
    """The stored prediction (with its transaction's fields) for one id, or None."""
    query = _prediction_view().where(predictions.c.transaction_id == transaction_id)
    row = connection.execute(query).mappings().first()
    return dict(row) if row is not None else None


def fetch_predictions(
    connection: Connection, transaction_ids: Sequence[int]
) -> list[dict[str, Any]]:
    """Stored predictions for the given ids (missing ids are skipped), in id order."""
    return [
        dict(row)
        for ids in _id_chunks(transaction_ids)
        for row in connection.execute(
            _prediction_view()
            .where(predictions.c.transaction_id.in_(ids))
            .order_by(predictions.c.transaction_id)
        ).mappings()
    ]


def recent_predictions(connection: Connection, limit: int = 100) -> list[dict[str, Any]]:
    """The newest ``limit`` predictions, newest first."""
    query = _prediction_view().order_by(predictions.c.created_at.desc()).limit(limit)
    return [dict(row) for row in connection.execute(query).mappings()]


def fetch_transactions(
    connection: Connection, transaction_ids: Sequence[int]
) -> list[dict[str, Any]]:
    """Stored transactions for the given ids (missing ids are skipped), in id order."""
    return [
        dict(row)
        for ids in _id_chunks(transaction_ids)
        for row in connection.execute(
            select(transactions)
            .where(transactions.c.transaction_id.in_(ids))
            .order_by(transactions.c.transaction_id)
        ).mappings()
    ]


def fetch_labels(connection: Connection, transaction_ids: Sequence[int]) -> dict[int, int]:
    """Stored verdicts (``tx_fraud``) by id; ids without a label are left out."""
    found: dict[int, int] = {}
    for ids in _id_chunks(transaction_ids):
        query = select(labels.c.transaction_id, labels.c.tx_fraud).where(
            labels.c.transaction_id.in_(ids)
        )
        found.update((int(tid), int(fraud)) for tid, fraud in connection.execute(query))
    return found


def count_rows(connection: Connection, table: Table) -> int:
    """Number of rows in ``table``."""
    return int(connection.execute(select(func.count()).select_from(table)).scalar_one())
