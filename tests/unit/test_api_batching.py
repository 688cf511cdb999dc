"""Concurrent requests share one batch call, in arrival order; a batch's error reaches all."""

from __future__ import annotations

import asyncio

import pytest

from vigil.serving.batching import RequestBatcher


class Recorder:
    """Answers item i with (item, position in its batch); records the batches it saw."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.fail = fail

    async def __call__(self, items: list[int]) -> list[tuple[int, int]]:
        self.batches.append(list(items))
        await asyncio.sleep(0)
        if self.fail:
            raise ConnectionError("state store down")
        return [(item, i) for i, item in enumerate(items)]


async def test_items_of_one_iteration_share_one_call_in_order() -> None:
    recorder = Recorder()
    batcher = RequestBatcher(recorder)
    results = await asyncio.gather(*(batcher.submit(t) for t in range(5)))
    assert recorder.batches == [[0, 1, 2, 3, 4]]
    assert results == [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)]
    assert await batcher.submit(9) == (9, 0) and recorder.batches[-1] == [9]


async def test_a_full_batch_goes_at_once() -> None:
    recorder = Recorder()
    batcher = RequestBatcher(recorder, max_batch=2)
    await asyncio.gather(*(batcher.submit(t) for t in range(5)))
    assert recorder.batches == [[0, 1], [2, 3], [4]]


async def test_a_batch_error_reaches_every_waiting_request() -> None:
    batcher = RequestBatcher(Recorder(fail=True))
    results = await asyncio.gather(*(batcher.submit(t) for t in range(3)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    with pytest.raises(ConnectionError):
        await batcher.submit(7)
