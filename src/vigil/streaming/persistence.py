"""The stream's database side: one transaction per micro-batch, in a dedicated thread."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from vigil.storage import (
    LabelRecord,
    PredictionRecord,
    RecordRejected,
    create_db_engine,
    fetch_predictions,
    fetch_transactions,
    insert_labels,
    insert_prediction_records,
)
from vigil.storage.isolation import write_isolating


class StreamStore:
    """Idempotent batch writes and the look-ups the stream needs."""

    def __init__(self, database_url: str) -> None:
        self._engine = create_db_engine(database_url, pool_size=1)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-stream-db")

    async def _run(self, function: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def _save_predictions(self, records: Sequence[PredictionRecord]) -> None:
        with self._engine.begin() as connection:
            insert_prediction_records(connection, records)

    async def _write_predictions(self, records: Sequence[PredictionRecord]) -> None:
        await self._run(self._save_predictions, records)

    async def save_predictions(
        self, records: Sequence[PredictionRecord]
    ) -> list[RecordRejected | None]:
        """Insert transactions and predictions in one commit (duplicates ignored); a record
        the database refuses is isolated: per record ``None`` (stored) or why it was refused.
        """
        return await write_isolating(
            self._write_predictions, records, lambda record: record.transaction_id
        )

    def _stored_predictions(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        with self._engine.connect() as connection:
            return fetch_predictions(connection, ids)

    async def stored_predictions(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        """Predictions already stored for ``ids``."""
        result: list[dict[str, Any]] = await self._run(self._stored_predictions, ids)
        return result

    def _save_labels(self, records: Sequence[LabelRecord]) -> list[dict[str, Any]]:
        with self._engine.begin() as connection:
            insert_labels(connection, records)
            return fetch_transactions(connection, [r.transaction_id for r in records])

    async def save_labels(self, records: Sequence[LabelRecord]) -> list[dict[str, Any]]:
        """Store labels (idempotent) and return the stored transactions they refer to."""
        result: list[dict[str, Any]] = await self._run(self._save_labels, records)
        return result

    async def close(self) -> None:
        """Release the connection and the thread."""
        await self._run(self._engine.dispose)
        self._executor.shutdown(wait=True)
