"""Per-day values shared by queue reads and refreshed at most every few seconds.

Ranking a day means reading every scored transaction of it (30,000 on a busy day): too much
for every queue read, and the ranking only moves when new transactions arrive. Building the
day's queue (the ranked cards' transactions, habits, terminals' fraud runs and verdicts) is
cheaper but still too much for every read of a loaded API. A value older than
``refresh_seconds`` is still answered while one refresh runs in the background
(stale-while-revalidate), so no reader waits for it after the first; ``refresh_seconds`` 0
computes on every read. A writer that changed a value (a verdict) puts the new one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

Ranked = list[tuple[int, float]]  # (customer id, top score), best first
MAX_ENTRIES = 16  # (day, budget) pairs kept; older ones are dropped first
T = TypeVar("T")


@dataclass
class _Entry(Generic[T]):
    value: T
    computed_at: float
    refreshing: asyncio.Task[None] | None = None
    version: int = 0  # bumped by put: a refresh begun before it must not overwrite it


class DayCache(Generic[T]):
    """Values by ``(day, budget)``, recomputed when older than ``refresh_seconds``."""

    def __init__(self, refresh_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._entries: OrderedDict[tuple[date, int], _Entry[T]] = OrderedDict()

    async def get(self, day: date, budget: int, compute: Callable[[], Awaitable[T]]) -> T:
        """The value of ``(day, budget)``: cached, refreshed in the background once stale."""
        if self._refresh_seconds <= 0:
            return await compute()
        key = (day, budget)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._store(key, await compute())
        self._entries.move_to_end(key)
        stale = self._clock() - entry.computed_at >= self._refresh_seconds
        if stale and entry.refreshing is None:
            entry.refreshing = asyncio.create_task(self._refresh(entry, entry.version, compute))
        return entry.value

    def put(self, day: date, budget: int, value: T) -> None:
        """Replace the value of ``(day, budget)`` (a writer changed it), fresh from now."""
        if self._refresh_seconds > 0:
            self._store((day, budget), value)

    def _store(self, key: tuple[date, int], value: T) -> _Entry[T]:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(value, self._clock())
            while len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)
        else:
            entry.value, entry.computed_at = value, self._clock()
            entry.version += 1
        return entry

    async def _refresh(
        self, entry: _Entry[T], version: int, compute: Callable[[], Awaitable[T]]
    ) -> None:
        try:
            value = await compute()
            if entry.version == version:
                entry.value, entry.computed_at = value, self._clock()
        except Exception:  # the stale value keeps serving; the next read retries
            logger.exception("refreshing a case queue value failed")
        finally:
            entry.refreshing = None

    async def close(self) -> None:
        """Wait for running refreshes (at shut-down)."""
        tasks = [e.refreshing for e in self._entries.values() if e.refreshing is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
