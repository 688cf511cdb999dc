"""Group commit: many concurrent submits share one durable database transaction.

Callers ``await submit(record)`` (or ``submit_many``); the writer gathers pending records into
a batch (up to ``max_batch``, or whatever arrived within ``max_delay_ms`` of the first), inserts
them (``COPY`` on PostgreSQL) in a dedicated thread, commits, and only then resolves every
caller's future. While a batch commits the next one accumulates, so a single thread keeps the
database busy. The queue is bounded: a full queue refuses at once (``WriterOverloaded``), and an
unreachable database fails the pending records (``DatabaseUnavailable``) while the writer
probes it with exponential backoff and resumes by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Engine

from vigil.storage.engine import create_db_engine, is_unavailable_error, ping
from vigil.storage.errors import DatabaseUnavailable, StorageError, WriterClosed, WriterOverloaded
from vigil.storage.records import PredictionRecord
from vigil.storage.repository import insert_prediction_records

log = logging.getLogger(__name__)

CommitObserver = Callable[[int, float], None]
"""Called after each successful commit with (records in the batch, seconds taken)."""


@dataclass(slots=True)
class _Ticket:
    """What one ``submit_many`` caller awaits: resolved once all its records are committed."""

    future: asyncio.Future[None]
    remaining: int


@dataclass(slots=True)
class _Pending:
    record: PredictionRecord
    ticket: _Ticket


def _is_reconnectable(error: BaseException) -> bool:
    """A pooled connection died (server restart, pg_terminate_backend): a fresh one may work."""
    return bool(getattr(error, "connection_invalidated", False))


class GroupCommitWriter:
    """Durable, batched persistence of prediction records for asyncio services."""

    def __init__(
        self,
        database_url: str,
        max_batch: int = 256,
        max_delay_ms: float = 2.0,
        queue_max: int = 10_000,
        *,
        on_commit: CommitObserver | None = None,
        retry_initial_s: float = 0.05,
        retry_max_s: float = 2.0,
    ) -> None:
        if max_batch <= 0 or queue_max <= 0 or max_delay_ms < 0:
            raise ValueError("max_batch and queue_max must be > 0 and max_delay_ms >= 0")
        self._url = database_url
        self._max_batch = max_batch
        self._max_delay_s = max_delay_ms / 1000.0
        self._queue_max = queue_max
        self._on_commit = on_commit
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._pending: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._healthy = False
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._engine: Engine | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.commits = 0

    @property
    def queue_depth(self) -> int:
        """Records waiting for a commit (the batch being committed excluded)."""
        return len(self._pending)

    @property
    def healthy(self) -> bool:
        """Whether the last database interaction succeeded."""
        return self._healthy

    async def start(self) -> None:
        """Connect and start the commit loop; an unreachable database is retried in background."""
        if self._task is not None:
            raise StorageError("writer already started")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-writer")
        self._engine = create_db_engine(self._url, pool_size=1)
        self._healthy = await self._probe()
        if not self._healthy:
            log.warning("database unreachable at start; the writer will keep retrying")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="group-commit")

    async def stop(self) -> None:
        """Refuse new records, commit everything already submitted, release the connection."""
        if self._task is None:
            return
        self._closing = True
        self._wakeup.set()
        await self._task
        self._task = None
        assert self._executor is not None and self._engine is not None
        await asyncio.get_running_loop().run_in_executor(self._executor, self._engine.dispose)
        self._executor.shutdown(wait=True)

    async def submit(self, record: PredictionRecord) -> None:
        """Queue ``record`` and return once the batch holding it is committed."""
        await self.submit_many([record])

    async def submit_many(self, records: Sequence[PredictionRecord]) -> None:
        """Queue records (all or none) and return once every one of them is committed."""
        if self._closing or self._task is None:
            raise WriterClosed("the prediction writer is not running")
        if not self._healthy:
            raise DatabaseUnavailable("the database is unreachable; retry later")
        if not records:
            return
        was_empty = not self._pending
        if len(self._pending) + len(records) > self._queue_max:
            raise WriterOverloaded(f"write queue full ({self._queue_max} records)")
        ticket = _Ticket(asyncio.get_running_loop().create_future(), len(records))
        self._pending.extend(_Pending(record, ticket) for record in records)
        if was_empty or len(self._pending) >= self._max_batch:
            self._wakeup.set()
        await ticket.future

    async def _run(self) -> None:
        if not self._healthy:
            await self._recover()
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if len(self._pending) < self._max_batch and self._max_delay_s > 0:
                await self._linger()
            count = min(self._max_batch, len(self._pending))
            batch = [self._pending.popleft() for _ in range(count)]
            await self._commit(batch)

    async def _linger(self) -> None:
        """Wait up to ``max_delay_ms`` for a full batch (submit wakes us when it is full)."""
        if self._closing:
            return
        self._wakeup.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), self._max_delay_s)

    async def _commit(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            await loop.run_in_executor(self._executor, self._write, [p.record for p in batch])
        except Exception as error:
            if is_unavailable_error(error):
                await self._handle_outage(batch, error)
            else:
                log.exception("could not store a batch of %d records", len(batch))
                self._fail(batch, StorageError(f"could not store the record: {error}"))
            return
        elapsed = time.perf_counter() - started
        self.commits += 1
        for pending in batch:
            ticket = pending.ticket
            ticket.remaining -= 1
            if ticket.remaining == 0 and not ticket.future.done():
                ticket.future.set_result(None)
        if self._on_commit is not None:
            self._on_commit(len(batch), elapsed)

    def _write(self, records: Sequence[PredictionRecord]) -> None:
        """Insert and commit one batch (runs in the writer thread)."""
        assert self._engine is not None
        try:
            with self._engine.begin() as connection:
                insert_prediction_records(connection, records)
        except Exception as error:
            if not _is_reconnectable(error):
                raise
            log.warning("database connection lost; retrying the batch on a new connection")
            with self._engine.begin() as connection:
                insert_prediction_records(connection, records)

    async def _handle_outage(self, batch: list[_Pending], error: BaseException) -> None:
        """Fail this batch and everything queued, then probe with backoff until it is back."""
        log.error("database unavailable, failing %d pending records: %s", len(batch), error)
        self._healthy = False
        waiting = [*batch, *self._pending]
        self._pending.clear()
        self._fail(waiting, DatabaseUnavailable(f"the database is unreachable: {error}"))
        await self._recover()

    async def _recover(self) -> None:
        """Probe the database with exponential backoff until it answers (or the writer stops)."""
        delay = self._retry_initial_s
        while not await self._probe():
            if self._closing:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max_s)
        log.info("database reachable again; the writer resumes")

    async def _probe(self) -> bool:
        assert self._engine is not None
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, ping, self._engine)
        except Exception as error:
            if not is_unavailable_error(error):
                raise
            self._healthy = False
            return False
        self._healthy = True
        return True

    @staticmethod
    def _fail(batch: list[_Pending], error: StorageError) -> None:
        for pending in batch:
            if not pending.ticket.future.done():
                pending.ticket.future.set_exception(error)
