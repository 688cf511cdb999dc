"""The online state's automatic recovery after a Redis restart or failover (ADR 0013).

PostgreSQL is the durable record of every decided transaction; Redis holds the online state
derived from it, and can lose some of it: a process crash during a stalled fsync loses up to
~3 s of acknowledged writes (``appendfsync everysec`` postpones the AOF write and replies
anyway), a failover loses what the replica had not received, a server without persistence
loses everything. Each API and worker process checks the servers' run ids every
``storage.state_check_seconds``, off the request path, and records in Redis when it last saw
them alive. A run id that changed means a restart or a promoted replica: the transactions
and labels received from ``storage.state_rewarm_margin_seconds`` before the old servers were
last seen are re-recorded from the database (a *tail* re-warm); when the warm marker is gone
too (the data was lost), the whole horizon is (a *full* re-warm, during which ``/health``
says ``degraded`` as for any cold store). Both use the idempotent warm-up of
:mod:`vigil.features.warmup`, so a transaction the server kept, recorded live since, or
re-warmed by another process changes nothing. One process re-warms at a time (a lease in
Redis); the record of what was seen is updated only after a re-warm succeeded, so a process
that fails or stops part-way leaves it for the next check, its own or another process's.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from vigil.config import StorageConfig
from vigil.features import OnlineFeatureComputer
from vigil.features.redis_state import RedisStateStore, ServersSeen
from vigil.features.warmup import (
    covers_horizon,
    received_transactions,
    stored_transactions,
    warm_state,
)
from vigil.monitoring import VigilMetrics
from vigil.storage.records import utc_now

log = logging.getLogger(__name__)

RewarmKind = Literal["tail", "full"]
LEASE_MS = 30_000  # a re-warm lease: extended every 10 s while its holder works


@dataclass(frozen=True)
class Rewarm:
    """One automatic re-warm: its kind, what it re-recorded and how long it took."""

    kind: RewarmKind
    since: datetime | None  # received since (tail); None: the whole horizon (full)
    transactions: int
    labels: int
    seconds: float


async def _stopped(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for its end without taking on its outcome. Not
    ``suppress(CancelledError): await task``: a cancellation of the *caller* arriving during
    that await would be swallowed too, and a stopping recovery would run on forever."""
    task.cancel()
    await asyncio.wait({task})
    if not task.cancelled() and (error := task.exception()) is not None:
        log.warning("re-warm lease extension failed: %s", error)


class StateRecovery:
    """Notices that the Redis servers of the state store changed and re-warms the state."""

    def __init__(
        self,
        computer: OnlineFeatureComputer,
        store: RedisStateStore,
        database_url: str,
        config: StorageConfig,
        metrics: VigilMetrics | None = None,
    ) -> None:
        self.computer = computer
        self.store = store
        self.database_url = database_url
        self.interval_s = config.state_check_seconds
        self.margin = timedelta(seconds=config.state_rewarm_margin_seconds)
        self.metrics = metrics
        self._failing = False

    @classmethod
    def of(
        cls,
        computer: OnlineFeatureComputer,
        config: StorageConfig,
        metrics: VigilMetrics | None = None,
    ) -> StateRecovery | None:
        """The recovery of ``computer``'s store: ``None`` for the in-process one, which lives
        and dies with its process."""
        store = computer.store
        if not isinstance(store, RedisStateStore):
            return None
        return cls(computer, store, config.database_url, config, metrics)

    async def _needed(self, run_ids: tuple[str, ...]) -> tuple[bool, datetime | None]:
        """Whether the store needs a re-warm, and of what was received since when (``None``:
        the whole horizon)."""
        seen = await self.store.alast_seen()
        warm = await self.store.awarm()
        if seen is None:
            # Came back empty (or a new store). A warm store never seen is this version's
            # first check: the record lives in the marker's slot, a server lost both or none.
            return not warm, None
        if seen.run_ids == run_ids:
            return False, None
        return True, seen.seen_at - self.margin if warm else None

    async def check(self) -> Rewarm | None:
        """Compare the servers' run ids with the recorded ones; re-warm if they changed.

        One process at a time re-warms (a lease in Redis, extended while it works); the
        others leave the record as it is and find it moved on at a later check, or take the
        lease over when its holder stopped extending it.
        """
        now = utc_now()
        run_ids = await self.store.arun_ids()
        needed, _ = await self._needed(run_ids)
        if not needed:
            await self.store.amark_seen(ServersSeen(run_ids, now))
            return None
        token = uuid.uuid4().hex
        if not await self.store.aclaim_rewarm(token, LEASE_MS):
            log.info("state store servers changed: another process re-warms it")
            return None
        done = None
        try:
            needed, since = await self._needed(run_ids)  # the last holder may have finished
            if needed:
                extending = asyncio.create_task(self._extend(token))
                try:
                    done = await asyncio.to_thread(self._rewarm, since)
                finally:
                    await _stopped(extending)
            await self.store.amark_seen(ServersSeen(run_ids, now))
        finally:
            await self.store.arelease_rewarm(token)
        return done

    async def _extend(self, token: str) -> None:
        """Keep the re-warm lease while the re-warm runs."""
        while await self.store.aextend_rewarm(token, LEASE_MS):
            await asyncio.sleep(LEASE_MS / 3000)

    def _rewarm(self, since: datetime | None) -> Rewarm:
        """Re-record from the database what was received since ``since`` (None: the horizon)."""
        started = time.perf_counter()
        kind: RewarmKind = "full" if since is None else "tail"
        horizon = self.computer.spec.horizon_us
        log.warning(
            "state store servers changed (restart or failover): re-warming %s from the database",
            "the whole horizon" if since is None else f"what was received since {since}",
        )
        if since is None:
            frame = stored_transactions(self.database_url, horizon)
            complete = covers_horizon(self.database_url, horizon)
        else:
            frame, complete = received_transactions(self.database_url, since), False
        transactions = labels = 0
        if not frame.empty:
            plan = warm_state(self.computer, frame, pending_labels=True, mark=complete)
            transactions, labels = plan.transactions, plan.labels
        done = Rewarm(kind, since, transactions, labels, time.perf_counter() - started)
        log.warning(
            "state store re-warmed (%s): %d transactions and %d labels in %.1f s",
            kind,
            transactions,
            labels,
            done.seconds,
        )
        if since is None and not complete:
            log.warning(
                "the database holds less than the features' horizon: the store stays cold "
                "(/health degraded) until `vigil warm-state --stored --input DATA` adds the rest"
            )
        if self.metrics is not None:
            self.metrics.state_store_rewarms.labels(kind).inc()
            self.metrics.state_store_rewarmed_transactions.labels(kind).inc(transactions)
        return done

    async def run(self) -> None:
        """:meth:`check` every ``interval_s`` until cancelled; a failed check (Redis or the
        database unreachable) is logged once and tried again at the next one."""
        while True:
            try:
                await self.check()
            except (RedisError, SQLAlchemyError, OSError) as error:
                if not self._failing:
                    log.warning("state store check failed, retrying: %s", error)
                self._failing = True
            else:
                if self._failing:
                    log.info("state store check succeeds again")
                self._failing = False
            await asyncio.sleep(self.interval_s)
