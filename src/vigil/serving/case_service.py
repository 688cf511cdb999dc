"""The HTTP adapter's side of the case queue: reads, the shared ranking, verdicts, metrics.

Reads run in worker threads on their own connections (the decision store's one thread stays
free for the label path); a verdict goes through the runtime's one label path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date
from functools import partial
from typing import TypeVar

from sqlalchemy import Connection, Engine

from vigil.cases import Case, CaseQueue, CaseStatus, card_case, day_queue
from vigil.cases.queue import rank_day, today
from vigil.cases.ranking import Ranked, RankingCache
from vigil.config import CasesConfig
from vigil.decisions import Runtime
from vigil.decisions.labels import CaseVerdict, VerdictOutcome
from vigil.monitoring import VigilMetrics
from vigil.monitoring.cases import observe_verdict

T = TypeVar("T")


def _on_connection(engine: Engine, work: Callable[[Connection], T]) -> T:
    with engine.connect() as connection:
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
        self._ranking = RankingCache(config.ranking_refresh_seconds)

    async def _read(self, work: Callable[[Connection], T]) -> T:
        return await asyncio.to_thread(_on_connection, self._engine, work)

    async def _ranked(self, day: date | None, budget: int) -> tuple[date, Ranked]:
        day = day if day is not None else await self._read(today)
        ranked = await self._ranking.ranked(
            day, budget, partial(self._read, partial(rank_day, day=day, budget=budget))
        )
        return day, ranked

    async def queue(
        self, day: date | None, budget: int | None, status: CaseStatus | None
    ) -> CaseQueue:
        """The queue of ``day`` (default today), ``budget`` long (default the configured)."""
        budget = budget if budget is not None else self._config.review_budget
        day, ranked = await self._ranked(day, budget)
        return await self._read(
            partial(
                day_queue, config=self._config, day=day, budget=budget, ranked=ranked, status=status
            )
        )

    async def case(self, customer_id: int, day: date | None) -> Case:
        """One card's case of ``day`` (``CaseNotFound`` when it has none)."""
        day, ranked = await self._ranked(day, self._config.review_budget)
        return await self._read(
            partial(card_case, config=self._config, customer_id=customer_id, day=day, ranked=ranked)
        )

    async def give_verdict(self, verdict: CaseVerdict) -> tuple[VerdictOutcome, Case]:
        """Record the verdict (one label path), then the case as it is now; metrics updated."""
        outcome = await self._runtime.record_verdict(verdict)
        queue = await self.queue(outcome.day, None, None)
        observe_verdict(self._metrics, outcome, queue)
        return outcome, await self.case(verdict.customer_id, outcome.day)

    async def close(self) -> None:
        """Let running ranking refreshes finish."""
        await self._ranking.close()
