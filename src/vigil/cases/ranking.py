"""The day's card ranking, shared by queue reads and refreshed at most every few seconds.

Ranking a day means reading every scored transaction of it (30,000 on a busy day): too much
for every queue read, and the ranking only moves when new transactions arrive. A ranking
older than ``refresh_seconds`` is still answered while one refresh runs in the background
(stale-while-revalidate), so no reader waits for it after the first; ``refresh_seconds`` 0
ranks on every read. Verdicts never change a ranking (scores do not move), and a case's
transactions and verdicts are always read fresh.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date

logger = logging.getLogger(__name__)

Ranked = list[tuple[int, float]]  # (customer id, top score), best first
MAX_ENTRIES = 16  # (day, budget) pairs kept; older ones are dropped first


@dataclass
class _Entry:
    ranked: Ranked
    computed_at: float
    refreshing: asyncio.Task[None] | None = None


class RankingCache:
    """Rankings by ``(day, budget)``, recomputed when older than ``refresh_seconds``."""

    def __init__(self, refresh_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._entries: OrderedDict[tuple[date, int], _Entry] = OrderedDict()

    async def ranked(
        self, day: date, budget: int, compute: Callable[[], Awaitable[Ranked]]
    ) -> Ranked:
        """The ranking of ``day``: cached, refreshed in the background once stale."""
        if self._refresh_seconds <= 0:
            return await compute()
        key = (day, budget)
        entry = self._entries.get(key)
        if entry is None:
            entry = _Entry(await compute(), self._clock())
            self._entries[key] = entry
            while len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)
        self._entries.move_to_end(key)
        stale = self._clock() - entry.computed_at >= self._refresh_seconds
        if stale and entry.refreshing is None:
            entry.refreshing = asyncio.create_task(self._refresh(entry, compute))
        return entry.ranked

    async def _refresh(self, entry: _Entry, compute: Callable[[], Awaitable[Ranked]]) -> None:
        try:
            entry.ranked, entry.computed_at = await compute(), self._clock()
        except Exception:  # the stale ranking keeps serving; the next read retries
            logger.exception("refreshing a case ranking failed")
        finally:
            entry.refreshing = None

    async def close(self) -> None:
        """Wait for running refreshes (at shut-down)."""
        tasks = [e.refreshing for e in self._entries.values() if e.refreshing is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
