"""Where the group-commit writer sends its batches: one durable transaction per ``write``.

:class:`PsycopgSink` (PostgreSQL over psycopg 3) runs on the event loop itself with a few
autocommit connections, so that several batches can be in flight at once and no thread hop or
GIL hand-over is paid per batch; each batch is one statement (:mod:`vigil.storage.pg_insert`),
committed when it returns. :class:`ThreadSink` (SQLite, other drivers) keeps the portable
SQLAlchemy insert in one dedicated thread, one batch at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    Engine,
    bindparam,
    cast,
    column,
    func,
    literal_column,
    make_url,
    select,
    table,
    true,
)
from sqlalchemy.dialects import postgresql

from vigil.storage.engine import create_db_engine, ping
from vigil.storage.errors import DatabaseUnavailable
from vigil.storage.partitions import ID_INDEX
from vigil.storage.pg_insert import INSERT_RECORDS_SQL, records_json
from vigil.storage.records import PredictionRecord
from vigil.storage.repository import fetch_records, insert_prediction_records, record_query
from vigil.storage.tables import predictions, transactions

log = logging.getLogger(__name__)


class RecordSink(Protocol):
    """A durable destination for batches of records."""

    concurrency: int
    """How many ``write`` calls may run at the same time."""

    async def write(self, records: Sequence[PredictionRecord]) -> set[int]:
        """Insert and commit ``records``; the ids inserted (the others were stored before);
        raises once the batch cannot be stored."""

    async def lookup(self, transaction_ids: Sequence[int]) -> list[PredictionRecord]:
        """The records already stored for any of ``transaction_ids`` (one query)."""

    async def probe(self) -> None:
        """Raise when the database cannot be reached."""

    async def close(self) -> None:
        """Release connections (no ``write`` is running)."""


def _is_reconnectable(error: BaseException) -> bool:
    """A pooled connection died (server restart, pg_terminate_backend): a fresh one may work."""
    return bool(getattr(error, "connection_invalidated", False))


class ThreadSink:
    """SQLAlchemy inserts in one dedicated thread (SQLite, or PostgreSQL without psycopg 3)."""

    concurrency = 1

    def __init__(self, database_url: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-writer")
        self._engine: Engine = create_db_engine(database_url, pool_size=1, pre_ping=False)

    async def _run(self, function: Any, *args: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def _write(self, records: Sequence[PredictionRecord]) -> set[int]:
        try:
            with self._engine.begin() as connection:
                return insert_prediction_records(connection, records)
        except Exception as error:
            if not _is_reconnectable(error):
                raise
            log.warning("database connection lost; retrying the batch on a new connection")
            with self._engine.begin() as connection:
                return insert_prediction_records(connection, records)

    async def write(self, records: Sequence[PredictionRecord]) -> set[int]:
        """Insert and commit in the writer thread; the ids inserted."""
        inserted: set[int] = await asyncio.get_running_loop().run_in_executor(
            self._executor, self._write, records
        )
        return inserted

    def _lookup(self, transaction_ids: Sequence[int]) -> list[PredictionRecord]:
        with self._engine.connect() as connection:
            return fetch_records(connection, transaction_ids)

    async def lookup(self, transaction_ids: Sequence[int]) -> list[PredictionRecord]:
        """Stored records, read in this sink's thread (after any write queued before)."""
        found: list[PredictionRecord] = await asyncio.get_running_loop().run_in_executor(
            self._executor, self._lookup, transaction_ids
        )
        return found

    async def probe(self) -> None:
        """``SELECT 1`` in the writer thread."""
        await self._run(ping, self._engine)

    async def close(self) -> None:
        """Dispose of the engine and stop the thread."""
        await self._run(self._engine.dispose)
        self._executor.shutdown(wait=True)


class PsycopgSink:
    """PostgreSQL over psycopg 3 async connections in autocommit mode, ``concurrency`` of them.

    Each batch is one statement, hence one round trip and one durable commit; a broken
    connection is replaced and the batch retried once (the insert is idempotent). At most
    ``concurrency`` connections are open or being opened at once: further writes and look-ups
    wait for one, so a burst of requests (the one after a database restart, when no connection
    is idle) cannot open a connection each and exhaust the server's ``max_connections``.
    """

    def __init__(self, database_url: str, concurrency: int = 2) -> None:
        if concurrency <= 0:
            raise ValueError("concurrency must be > 0")
        url = make_url(database_url)
        self._connect_args = dict(url.get_dialect()().create_connect_args(url)[1])
        self.concurrency = concurrency
        self._idle: list[Any] = []  # psycopg.AsyncConnection, imported lazily
        self._slots = asyncio.Semaphore(concurrency)  # one per connection open or opening

    async def _connect(self) -> Any:
        import psycopg

        try:
            return await psycopg.AsyncConnection.connect(autocommit=True, **self._connect_args)
        except (psycopg.OperationalError, psycopg.InterfaceError) as error:
            raise DatabaseUnavailable(f"the database is unreachable: {error}") from error

    async def _execute(self, sql: str, parameters: Any, fresh: bool) -> list[Any]:
        """Run ``sql`` on an idle connection (a new one if ``fresh``); keep it if healthy.

        Returns its rows (every statement here returns some: the insert its ids).
        """
        async with self._slots:
            return await self._execute_in_slot(sql, parameters, fresh)

    async def _execute_in_slot(self, sql: str, parameters: Any, fresh: bool) -> list[Any]:
        import psycopg

        if fresh and self._idle:  # the idle ones may be as dead as the one that broke
            await self.close()
        connection = self._idle.pop() if self._idle and not fresh else await self._connect()
        try:
            cursor = await connection.execute(sql, parameters, prepare=True)
            # not ``if cursor.description``: psycopg builds that list of columns anew on
            # every read (7.9 us, one per batch)
            rows: list[Any] = await cursor.fetchall()
        except psycopg.Error as error:
            if connection.broken or connection.closed:
                await connection.close()
                raise _ConnectionLost(str(error)) from error
            self._idle.append(connection)  # a refused batch leaves the connection usable
            if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
                raise DatabaseUnavailable(f"the database failed: {error}") from error
            raise
        except BaseException:  # cancelled mid-statement: the session state is unknown
            await connection.close()
            raise
        self._idle.append(connection)
        return rows

    async def _retried(self, sql: str, parameters: Any) -> list[Any]:
        """:meth:`_execute`, once more on a new connection if the pooled one had died."""
        try:
            return await self._execute(sql, parameters, fresh=False)
        except _ConnectionLost:
            log.warning("database connection lost; retrying on a new connection")
            try:
                return await self._execute(sql, parameters, fresh=True)
            except _ConnectionLost as error:
                raise DatabaseUnavailable(f"the database is unreachable: {error}") from error

    async def write(self, records: Sequence[PredictionRecord]) -> set[int]:
        """One statement inserting both tables, committed on return; the ids inserted."""
        rows = await self._retried(INSERT_RECORDS_SQL, (records_json(records),))
        return {row[0] for row in rows}

    async def lookup(self, transaction_ids: Sequence[int]) -> list[PredictionRecord]:
        """One prepared query on an idle connection, on the event loop, reading one partition
        of each table per id (:data:`SELECT_RECORDS_SQL`); the ids it misses, if any, again
        over every partition (:data:`SELECT_RECORDS_ANY_DAY_SQL`)."""
        if not transaction_ids:
            return []
        ids = list(transaction_ids)
        rows = await self._retried(SELECT_RECORDS_SQL, {"ids": ids})
        found = {row[0] for row in rows}  # transaction_id, the first column
        missing = [tid for tid in dict.fromkeys(ids) if tid not in found]
        if missing:  # not stored, or a prediction not made at its transaction's receipt
            rows += await self._retried(SELECT_RECORDS_ANY_DAY_SQL, {"ids": missing})
        return [PredictionRecord(**dict(zip(_RECORD_COLUMNS, row, strict=True))) for row in rows]

    async def probe(self) -> None:
        """Drop idle connections (they may be dead) and check a fresh one with ``SELECT 1``."""
        async with self._slots:
            await self._probe_in_slot()

    async def _probe_in_slot(self) -> None:
        await self.close()
        connection = await self._connect()
        try:
            await connection.execute("SELECT 1")
        except Exception as error:
            await connection.close()
            raise DatabaseUnavailable(f"the database is unreachable: {error}") from error
        self._idle.append(connection)

    async def close(self) -> None:
        """Close the idle connections."""
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close()


def _select_records_sql(by_day: bool) -> str:
    """:func:`record_query` for psycopg, the ids as one array parameter ``ids``; ``by_day``:
    from :data:`~vigil.storage.partitions.ID_INDEX`, joined on both partition keys."""
    from sqlalchemy.dialects.postgresql import psycopg

    ids = cast(bindparam("ids"), postgresql.ARRAY(BigInteger))  # int8[]: the index is used
    if not by_day:
        query = record_query().where(transactions.c.transaction_id == func.any(ids))
        return str(query.compile(dialect=psycopg.dialect()))
    # LATERAL: each id's rows are read with its receipt time known, so PostgreSQL prunes the
    # partitions per id at run time (a join could be planned as a scan of every partition)
    index = table(ID_INDEX, column("transaction_id"), column("received_at"))
    row = (
        select(transactions)
        .where(transactions.c.transaction_id == index.c.transaction_id)
        .where(transactions.c.received_at == index.c.received_at)
        .limit(literal_column("1"))  # one row (its primary key); keeps it from being flattened
        .lateral("t")
    )
    prediction = (
        select(*[c for c in predictions.c if c.name != "transaction_id"])
        .where(predictions.c.transaction_id == index.c.transaction_id)
        .where(predictions.c.created_at == index.c.received_at)
        .limit(literal_column("1"))
        .lateral("p")
    )
    query = (
        select(row, prediction)
        .select_from(index)
        .join(row, true())
        .join(prediction, true())
        .where(index.c.transaction_id == func.any(ids))
    )
    assert [c.name for c in query.selected_columns] == _RECORD_COLUMNS
    return str(query.compile(dialect=psycopg.dialect()))


_RECORD_COLUMNS = [column.name for column in record_query().selected_columns]
SELECT_RECORDS_SQL = _select_records_sql(by_day=True)
"""The stored records of the ids in the array parameter ``ids`` whose prediction was made at
its transaction's receipt (the pipeline stamps both with one clock read): ``transaction_ids``
holds the receipt time, the partition key of both tables, so each id is an index probe there
and then one partition of each table, however many days are stored (ADR 0014)."""
SELECT_RECORDS_ANY_DAY_SQL = _select_records_sql(by_day=False)
"""The stored records of the ids in ``ids``, by id alone: every day partition is probed."""


class _ConnectionLost(Exception):
    """The connection broke during a write (the server restarted or ended the session)."""


def make_sink(database_url: str, concurrency: int) -> RecordSink:
    """:class:`PsycopgSink` for ``postgresql+psycopg`` URLs, :class:`ThreadSink` otherwise."""
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql" and url.get_driver_name() == "psycopg":
        return PsycopgSink(database_url, concurrency)
    return ThreadSink(database_url)
