"""Shared per-day values (ranking, built queue): computed once, answered stale while refreshed."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

from vigil.cases.ranking import MAX_ENTRIES, DayCache, Ranked

DAY = date(2018, 9, 30)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Ranker:
    """A ranking that changes on every computation; counts them."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> Ranked:
        self.calls += 1
        await asyncio.sleep(0)
        return [(self.calls, 1.0)]


def test_a_stale_ranking_is_answered_while_one_refresh_runs() -> None:
    async def scenario() -> None:
        clock, ranker = Clock(), Ranker()
        cache = DayCache(5.0, clock)
        assert await cache.get(DAY, 100, ranker) == [(1, 1.0)]
        clock.now = 4.9
        assert await cache.get(DAY, 100, ranker) == [(1, 1.0)]
        assert ranker.calls == 1
        clock.now = 5.0  # stale: the old ranking now, one refresh behind it
        assert await cache.get(DAY, 100, ranker) == [(1, 1.0)]
        assert await cache.get(DAY, 100, ranker) == [(1, 1.0)]
        await cache.close()
        assert ranker.calls == 2
        assert await cache.get(DAY, 100, ranker) == [(2, 1.0)]
        assert await cache.get(DAY, 10, ranker) == [(3, 1.0)]  # another budget: its own

    asyncio.run(scenario())


def test_a_failed_refresh_keeps_the_last_ranking() -> None:
    async def scenario() -> None:
        clock = Clock()
        cache = DayCache(1.0, clock)
        assert await cache.get(DAY, 1, Ranker()) == [(1, 1.0)]

        async def broken() -> Ranked:
            raise OSError("database gone")

        clock.now = 2.0
        assert await cache.get(DAY, 1, broken) == [(1, 1.0)]
        await cache.close()
        assert await cache.get(DAY, 1, Ranker()) == [(1, 1.0)]  # refreshing again
        await cache.close()
        assert await cache.get(DAY, 1, Ranker()) == [(1, 1.0)]

    asyncio.run(scenario())


def test_zero_refresh_ranks_every_time_and_the_cache_is_bounded() -> None:
    async def scenario() -> None:
        ranker = Ranker()
        every = DayCache(0.0)
        assert [await every.get(DAY, 1, ranker) for _ in range(3)][-1] == [(3, 1.0)]
        cache = DayCache(60.0, Clock())
        for offset in range(MAX_ENTRIES + 5):
            await cache.get(DAY - timedelta(days=offset), 100, Ranker())
        assert len(cache._entries) == MAX_ENTRIES
        assert (DAY, 100) not in cache._entries  # the oldest used went first

    asyncio.run(scenario())


def test_a_put_value_is_answered_and_not_overwritten_by_an_older_refresh() -> None:
    async def scenario() -> None:
        clock, ranker = Clock(), Ranker()
        cache: DayCache[Ranked] = DayCache(5.0, clock)
        assert await cache.get(DAY, 100, ranker) == [(1, 1.0)]
        clock.now = 6.0
        assert await cache.get(DAY, 100, ranker) == [(1, 1.0)]  # a refresh starts
        cache.put(DAY, 100, [(9, 9.0)])  # a verdict wrote before the refresh finished
        await cache.close()
        assert ranker.calls == 2
        assert await cache.get(DAY, 100, ranker) == [(9, 9.0)]
        DayCache[Ranked](0.0).put(DAY, 100, [(9, 9.0)])  # no caching: nothing kept

    asyncio.run(scenario())
