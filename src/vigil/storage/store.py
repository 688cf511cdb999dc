"""The decisions' database side beyond the group commit: batch writes, look-ups and labels.

Prediction records go through a :class:`~vigil.storage.sinks.RecordSink`, the same insert the
group-commit writer uses, so the API and the stream worker store a decision identically; the
worker commits each micro-batch as one transaction (and acks only after). Look-ups and label
writes run in one dedicated thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Connection

from vigil.storage.engine import create_db_engine
from vigil.storage.errors import RecordRejected
from vigil.storage.isolation import write_isolating
from vigil.storage.records import LabelRecord, PredictionRecord
from vigil.storage.repository import fetch_transactions, insert_labels
from vigil.storage.sinks import make_sink

T = TypeVar("T")


def _transaction_id(record: PredictionRecord) -> int:
    return record.transaction_id


class DecisionStore:
    """Idempotent batch writes of decisions and labels, and the look-ups they need."""

    def __init__(self, database_url: str, connections: int = 2) -> None:
        self._sink = make_sink(database_url, connections)
        self._engine = create_db_engine(database_url, pool_size=1)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-store")

    async def _run(self, function: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def save_predictions(
        self, records: Sequence[PredictionRecord]
    ) -> list[RecordRejected | None]:
        """Insert transactions and predictions in one commit (duplicates ignored); a record
        the database refuses is isolated: per record ``None`` (stored) or why it was refused.
        """
        return await write_isolating(self._sink.write, records, _transaction_id)

    async def stored_records(self, transaction_ids: Sequence[int]) -> list[PredictionRecord]:
        """The records already stored for any of ``transaction_ids``: one query."""
        return await self._sink.lookup(transaction_ids)

    def _save_labels(self, records: Sequence[LabelRecord]) -> list[dict[str, Any]]:
        with self._engine.begin() as connection:
            insert_labels(connection, records)
            return fetch_transactions(connection, [r.transaction_id for r in records])

    async def save_labels(self, records: Sequence[LabelRecord]) -> list[dict[str, Any]]:
        """Store labels (idempotent) and return the stored transactions they refer to."""
        result: list[dict[str, Any]] = await self._run(self._save_labels, records)
        return result

    def _in_transaction(self, work: Callable[[Connection], T]) -> T:
        with self._engine.begin() as connection:
            return work(connection)

    async def run_in_transaction(self, work: Callable[[Connection], T]) -> T:
        """``work(connection)`` in one database transaction, on the store's thread."""
        result: T = await self._run(self._in_transaction, work)
        return result

    async def close(self) -> None:
        """Release the connections and the thread."""
        await self._sink.close()
        await self._run(self._engine.dispose)
        self._executor.shutdown(wait=True)
