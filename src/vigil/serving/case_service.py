"""The HTTP adapter's side of the case queue: reads, the shared ranking, verdicts, metrics.

Reads run in worker threads on their own connections (the decision store's one thread stays
free for the label path); a verdict goes through the runtime's one label path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date
from functools import partial
from typing import Literal, TypeVar

from sqlalchemy import Connection, Engine

from vigil.cases import Case, CaseQueue, CaseStatus, card_case, day_queue
from vigil.cases.queue import rank_day, sync_case_days, today
from vigil.cases.ranking import DayCache, Ranked
from vigil.config import CasesConfig
from vigil.decisions import Runtime
from vigil.decisions.labels import CaseVerdict, VerdictOutcome
from vigil.monitoring import VigilMetrics
from vigil.monitoring.cases import observe_verdict

T = TypeVar("T")


def _on_connection(engine: Engine, work: Callable[[Connection], T]) -> T:
    # begin, not connect: a read may bring the queue's copy of a day up to date (a card not
    # found in it), and that is committed
    with engine.begin() as connection:
        return work(connection)


class CaseService:
    """The day's queue, one card's case and verdicts, over the database and the runtime."""

    def __init__(
        self, config: CasesConfig, engine: Engine, runtime: Runtime, metrics: VigilMetrics
    ) -> None:
        self._config = config
        self._engine = engine
        self._runtime = runtime
        self._metrics = metrics
        self._ranking: DayCache[Ranked] = DayCache(config.ranking_refresh_seconds)
        self._queues: DayCache[CaseQueue] = DayCache(config.queue_refresh_seconds)

    async def _read(self, work: Callable[[Connection], T]) -> T:
        return await asyncio.to_thread(_on_connection, self._engine, work)

    async def _sync(self, day: date, recheck: Literal["day", "all"]) -> None:
        """Bring the queue's copy of ``day``'s case days up to date in a transaction of its
        own, committed before the reads (on SQLite the writer lock is held for the copy only)."""
        await self._read(partial(sync_case_days, config=self._config, day=day, recheck=recheck))

    async def _rank(self, day: date, budget: int) -> Ranked:
        await self._sync(day, "all")  # the ranking's refresh: every day a case reads
        delay = self._runtime.settings.features.label_delay_days
        rank = partial(rank_day, config=self._config, day=day, budget=budget, delay_days=delay)
        return await self._read(rank)

    async def _ranked(self, day: date, budget: int) -> Ranked:
        return await self._ranking.get(day, budget, partial(self._rank, day, budget))

    async def _build_queue(self, day: date, budget: int) -> CaseQueue:
        ranked = await self._ranked(day, budget)
        await self._sync(day, "day")
        return await self._read(
            partial(
                day_queue, config=self._config, day=day, budget=budget, ranked=ranked, recheck=None
            )
        )

    async def queue(
        self, day: date | None, budget: int | None, status: CaseStatus | None
    ) -> CaseQueue:
        """The queue of ``day`` (default today), ``budget`` long (default the configured)."""
        budget = budget if budget is not None else self._config.review_budget
        day = day if day is not None else await self._read(today)
        built = await self._queues.get(day, budget, partial(self._build_queue, day, budget))
        return built.only(status)

    async def case(self, customer_id: int, day: date | None) -> Case:
        """One card's case of ``day`` (``CaseNotFound`` when it has none)."""
        day = day if day is not None else await self._read(today)
        ranked = await self._ranked(day, self._config.review_budget)
        return await self._read(
            partial(card_case, config=self._config, customer_id=customer_id, day=day, ranked=ranked)
        )

    async def give_verdict(self, verdict: CaseVerdict) -> tuple[VerdictOutcome, Case]:
        """Record the verdict (one label path), then the case as it is now; metrics updated."""
        outcome = await self._runtime.record_verdict(verdict)
        budget = self._config.review_budget
        queue = await self._build_queue(outcome.day, budget)
        self._queues.put(outcome.day, budget, queue)  # readers see the verdict at once
        observe_verdict(self._metrics, outcome, queue)
        return outcome, await self.case(verdict.customer_id, outcome.day)

    async def close(self) -> None:
        """Let running refreshes finish."""
        await self._ranking.close()
        await self._queues.close()
