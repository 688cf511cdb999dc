"""Group commit: many concurrent submits share one durable database transaction.

Callers ``await submit(record)`` (or ``submit_many``); the writer gathers pending records into
a batch (up to ``max_batch``), inserts and commits it through a :mod:`sink
<vigil.storage.sinks>`, and only then resolves every caller's future. A batch starts as soon as
a connection is free, so under load the records that arrive while every connection is
committing form the next batch; ``max_delay_ms`` > 0 also waits that long after the oldest
record for more (fewer, larger commits at the cost of latency). On PostgreSQL up to
``connections`` batches are in flight at once, so a batch is written while the one before it
is still waiting for its commit to reach the disk; two batches sharing a transaction id are
never in flight together, so the first of an id still wins. The queue is bounded: a full
queue refuses at once (``WriterOverloaded``), and an unreachable database fails the pending
records (``DatabaseUnavailable``) while the writer probes it with exponential backoff and
resumes by itself. A batch the database refuses is split until the refusing record stands
alone (:mod:`vigil.storage.isolation`): only that record's caller gets a
:class:`~vigil.storage.errors.RecordRejected`, its neighbours are stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vigil.storage.errors import (
    AlreadyStored,
    DatabaseUnavailable,
    RecordRejected,
    StorageError,
    WriterClosed,
    WriterOverloaded,
)
from vigil.storage.isolation import is_outage, write_isolating
from vigil.storage.records import PredictionRecord
from vigil.storage.sinks import RecordSink, make_sink

log = logging.getLogger(__name__)

CommitObserver = Callable[[int, float], None]
"""Called after each successful commit with (records in the batch, seconds taken)."""


@dataclass(slots=True)
class _Ticket:
    """What one ``submit_many`` caller awaits: resolved once all its records are settled."""

    future: asyncio.Future[list[RecordRejected | None]]
    remaining: int
    submitted: float  # loop time
    outcomes: list[RecordRejected | None]  # per record of the caller: refused alone, or stored


@dataclass(slots=True)
class _Pending:
    record: PredictionRecord
    ticket: _Ticket
    position: int  # in the caller's records


class GroupCommitWriter:
    """Durable, batched persistence of prediction records for asyncio services."""

    def __init__(
        self,
        database_url: str,
        max_batch: int = 256,
        max_delay_ms: float = 0.0,
        queue_max: int = 10_000,
        *,
        on_commit: CommitObserver | None = None,
        retry_initial_s: float = 0.05,
        retry_max_s: float = 2.0,
        connections: int = 2,
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
        self._connections = connections
        self._pending: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._in_flight: dict[asyncio.Task[None], frozenset[int]] = {}
        self._healthy = False
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._sink: RecordSink | None = None
        self.commits = 0

    @property
    def queue_depth(self) -> int:
        """Records waiting for a commit (the batches being committed excluded)."""
        return len(self._pending)

    @property
    def healthy(self) -> bool:
        """Whether the last database interaction succeeded."""
        return self._healthy

    async def start(self) -> None:
        """Connect and start the commit loop; an unreachable database is retried in background."""
        if self._task is not None:
            raise StorageError("writer already started")
        self._sink = make_sink(self._url, self._connections)
        self._healthy = await self._probe()
        if not self._healthy:
            log.warning("database unreachable at start; the writer will keep retrying")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="group-commit")

    async def stop(self) -> None:
        """Refuse new records, commit everything already submitted, release the connections."""
        if self._task is None:
            return
        self._closing = True
        self._wakeup.set()
        await self._task
        self._task = None
        assert self._sink is not None
        await self._sink.close()

    async def submit(self, record: PredictionRecord) -> None:
        """Queue ``record``; return once committed (or its id was already stored), raise
        ``RecordRejected`` if it is refused."""
        (rejected,) = await self.submit_many([record])
        if rejected is not None and not isinstance(rejected, AlreadyStored):
            raise rejected

    async def submit_many(self, records: Sequence[PredictionRecord]) -> list[RecordRejected | None]:
        """Queue records (all or none); once each is settled, per record ``None`` (committed),
        :class:`AlreadyStored` (its id was stored before) or the :class:`RecordRejected` the
        database gave that record alone."""
        if self._closing or self._task is None:
            raise WriterClosed("the prediction writer is not running")
        if not self._healthy:
            raise DatabaseUnavailable("the database is unreachable; retry later")
        if not records:
            return []
        was_empty = not self._pending
        if len(self._pending) + len(records) > self._queue_max:
            raise WriterOverloaded(f"write queue full ({self._queue_max} records)")
        loop = asyncio.get_running_loop()
        ticket = _Ticket(loop.create_future(), len(records), loop.time(), [None] * len(records))
        self._pending.extend([_Pending(record, ticket, i) for i, record in enumerate(records)])
        if was_empty or len(self._pending) >= self._max_batch:
            self._wakeup.set()
        return await ticket.future

    async def _run(self) -> None:
        while True:
            if not self._healthy:
                await self._recover()
            if not self._pending:
                if self._closing:
                    break
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._until_in_flight_below(self._sink_concurrency())
            await self._linger()
            if not self._healthy or not self._pending:
                continue  # a batch in flight met an outage and failed the queue
            count = min(self._max_batch, len(self._pending))
            batch = [self._pending.popleft() for _ in range(count)]
            await self._launch(batch)
        await self._until_in_flight_below(1)

    def _sink_concurrency(self) -> int:
        assert self._sink is not None
        return self._sink.concurrency

    async def _until_in_flight_below(self, limit: int) -> None:
        """Wait until fewer than ``limit`` batches are being committed."""
        while len(self._in_flight) >= limit:
            self._slot_freed.clear()
            await self._slot_freed.wait()

    async def _linger(self) -> None:
        """Wait until ``max_delay_ms`` after the oldest record, unless a batch is full."""
        loop = asyncio.get_running_loop()
        while self._pending and len(self._pending) < self._max_batch and not self._closing:
            remaining = self._pending[0].ticket.submitted + self._max_delay_s - loop.time()
            if remaining <= 0:
                return
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), remaining)

    async def _launch(self, batch: list[_Pending]) -> None:
        """Start committing ``batch`` once no batch in flight holds one of its ids."""
        ids = frozenset([p.record.transaction_id for p in batch])
        while any(not ids.isdisjoint(other) for other in self._in_flight.values()):
            self._slot_freed.clear()
            await self._slot_freed.wait()
        task = asyncio.get_running_loop().create_task(self._commit(batch))
        self._in_flight[task] = ids
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        del self._in_flight[task]
        self._slot_freed.set()

    async def _commit(self, batch: list[_Pending]) -> None:
        assert self._sink is not None
        started = time.perf_counter()
        try:
            outcomes = await write_isolating(
                self._sink.write, [p.record for p in batch], _transaction_id
            )
        except Exception as error:  # an outage: any other error was settled per record
            self._handle_outage(batch, error)
            return
        elapsed = time.perf_counter() - started
        self.commits += 1
        for pending, outcome in zip(batch, outcomes, strict=True):
            ticket = pending.ticket
            ticket.outcomes[pending.position] = outcome
            ticket.remaining -= 1
            if ticket.remaining == 0 and not ticket.future.done():
                ticket.future.set_result(ticket.outcomes)
        if self._on_commit is not None:
            self._on_commit(len(batch), elapsed)

    def _handle_outage(self, batch: list[_Pending], error: BaseException) -> None:
        """Fail this batch and everything queued; the commit loop then probes until it is back."""
        log.error("database unavailable, failing %d pending records: %s", len(batch), error)
        self._healthy = False
        waiting = [*batch, *self._pending]
        self._pending.clear()
        unavailable = (
            error
            if isinstance(error, DatabaseUnavailable)
            else DatabaseUnavailable(f"the database is unreachable: {error}")
        )
        self._fail(waiting, unavailable)
        self._wakeup.set()

    async def _recover(self) -> None:
        """Probe the database with exponential backoff until it answers (or the writer stops)."""
        delay = self._retry_initial_s
        while not await self._probe():
            if self._closing:
                waiting = list(self._pending)
                self._pending.clear()
                self._fail(waiting, DatabaseUnavailable("the database is unreachable"))
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max_s)
        log.info("database reachable again; the writer resumes")

    async def _probe(self) -> bool:
        assert self._sink is not None
        try:
            await self._sink.probe()
        except Exception as error:
            if not is_outage(error):
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


def _transaction_id(record: PredictionRecord) -> int:
    return record.transaction_id
