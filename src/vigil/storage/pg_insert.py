"""PostgreSQL bulk insert of prediction records: one statement, idempotent on ``transaction_id``.

The batch travels as one JSON parameter (``orjson`` serialises the record dataclasses in C),
``json_to_recordset`` turns it back into rows on the server, and one statement stores them.
Both tables are partitioned by day (:mod:`vigil.storage.partitions`), so ``transaction_id``
alone has no unique index on them: the statement first claims each id in ``transaction_ids``
(``ON CONFLICT DO NOTHING``, in ascending id order: two statements claiming overlapping ids
wait for each other in one order only, so they cannot deadlock there), then inserts the
transaction and prediction rows of the ids it claimed only, each routed by PostgreSQL to the
partition of its day, and returns the ids it inserted. An id already stored keeps its first
rows, as before partitioning. Each insert reads the claimed rows straight from ``batch`` (a
semi-join with the claimed ids): a CTE of the claimed rows, read by both inserts, was one more
copy of every row (``callgrind`` of the server, 1.9 % of its instructions per record;
docs/benchmarks.md, 2026-12-06). The parameter holds the first record of each id only
(:func:`records_json`; the first of duplicate ids in the batch wins): deduplicating whole rows
in the statement (``DISTINCT ON``) cost the server 24k instructions per statement and 1.3k per
record, the client's check 6 us per 128 records; sorting the claimed ids alone costs 6k and
0.4k. It replaced ``COPY`` into temporary ``ON COMMIT DELETE ROWS`` staging tables, whose
truncation at every commit cost more than the rows themselves, and it is one round trip: in
autocommit mode the statement is its own durable transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql

from vigil.storage.partitions import ID_INDEX
from vigil.storage.records import PredictionRecord
from vigil.storage.tables import predictions, transactions

_DIALECT = postgresql.dialect()
# SQLAlchemy's JSON type stores Python None as JSON null, not SQL NULL; so does this insert.
_JSON_NULL_COLUMNS = frozenset({"extra"})


def _record_columns() -> dict[str, str]:
    """Name -> PostgreSQL type of every column either table takes from a record."""
    columns: dict[str, str] = {}
    for table in (transactions, predictions):
        for column in table.columns:
            columns.setdefault(column.name, column.type.compile(dialect=_DIALECT))
    return columns


def _select_list(table: Table) -> tuple[str, str]:
    """The table's column names and the matching expressions over the ``batch`` rows."""
    names = [column.name for column in table.columns]
    values = [f"coalesce({n}, 'null'::json)" if n in _JSON_NULL_COLUMNS else n for n in names]
    return ", ".join(names), ", ".join(values)


def _insert_sql() -> str:
    columns = _record_columns()
    definitions = ", ".join(f"{name} {sql_type}" for name, sql_type in columns.items())
    inserts = []
    for table in (transactions, predictions):
        names, values = _select_list(table)
        inserts.append(
            f"INSERT INTO {table.name} ({names}) SELECT {values} FROM batch "
            "WHERE transaction_id IN (SELECT transaction_id FROM ids)"
        )
    return (
        f"WITH batch AS (SELECT * FROM json_to_recordset(%s::json) AS ({definitions})), "
        f"ids AS (INSERT INTO {ID_INDEX} (transaction_id, received_at) "
        "SELECT transaction_id, received_at FROM batch ORDER BY transaction_id "
        "ON CONFLICT (transaction_id) DO NOTHING RETURNING transaction_id), "
        f"stored_transactions AS ({inserts[0]}) {inserts[1]} RETURNING transaction_id"
    )


INSERT_RECORDS_SQL = _insert_sql()
"""Inserts both rows of every record of the JSON array parameter (ids distinct: see
:func:`records_json`); ids already stored are kept. Returns the ids it inserted (the ones it
claimed)."""


def _default(value: Any) -> Any:
    """What orjson cannot serialise natively: numpy scalars and other number-likes."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot store a {type(value).__name__} value")


def first_of_each_id(records: Sequence[PredictionRecord]) -> Sequence[PredictionRecord]:
    """``records`` without the later records of a repeated ``transaction_id`` (in order)."""
    if len({record.transaction_id for record in records}) == len(records):
        return records  # the common case: no id repeated
    firsts: dict[int, PredictionRecord] = {}
    for record in records:
        firsts.setdefault(record.transaction_id, record)
    return list(firsts.values())


def records_json(records: Sequence[PredictionRecord]) -> str:
    """The records as the JSON array parameter of :data:`INSERT_RECORDS_SQL`: the first record
    of each id only."""
    return orjson.dumps(first_of_each_id(records), default=_default).decode()


def insert_records(dbapi_connection: Any, records: Sequence[PredictionRecord]) -> set[int]:
    """Insert records over a psycopg 3 connection (the caller's transaction, or autocommit);
    the ids inserted."""
    if not records:
        return set()
    cursor = dbapi_connection.execute(INSERT_RECORDS_SQL, (records_json(records),), prepare=True)
    return {row[0] for row in cursor.fetchall()}
