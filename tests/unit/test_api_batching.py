"""Concurrent /predict lookups share one state-store round trip, in arrival order."""

from __future__ import annotations

import asyncio
from datetime import datetime

import numpy as np
import pytest

from vigil.features import Transaction
from vigil.serving.batching import FeatureBatcher


class CountingComputer:
    """Answers row i with [transaction_id, position in its batch]; records batch sizes."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.fail = fail

    async def afeatures_for_batch(self, txs: list[Transaction]) -> np.ndarray:
        self.batches.append([tx.transaction_id for tx in txs])
        if self.fail:
            raise ConnectionError("state store down")
        return np.asarray([[tx.transaction_id, i] for i, tx in enumerate(txs)], np.float32)


def _tx(tid: int) -> Transaction:
    return Transaction(tid, datetime(2018, 4, 1), 1, 2, 10.0)


async def test_lookups_of_one_iteration_share_one_call_in_order() -> None:
    computer = CountingComputer()
    batcher = FeatureBatcher(computer)  # type: ignore[arg-type]
    rows = await asyncio.gather(*(batcher.features_for(_tx(t)) for t in range(5)))
    assert computer.batches == [[0, 1, 2, 3, 4]]
    assert [row.tolist() for row in rows] == [[t, t] for t in range(5)]
    later = await batcher.features_for(_tx(9))
    assert computer.batches[-1] == [9] and later.tolist() == [9, 0]


async def test_a_full_batch_goes_at_once() -> None:
    computer = CountingComputer()
    batcher = FeatureBatcher(computer, max_batch=2)  # type: ignore[arg-type]
    await asyncio.gather(*(batcher.features_for(_tx(t)) for t in range(5)))
    assert computer.batches == [[0, 1], [2, 3], [4]]


async def test_a_store_error_reaches_every_waiting_request() -> None:
    batcher = FeatureBatcher(CountingComputer(fail=True))  # type: ignore[arg-type]
    results = await asyncio.gather(
        *(batcher.features_for(_tx(t)) for t in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, ConnectionError) for r in results)
    with pytest.raises(ConnectionError):
        await batcher.features_for(_tx(7))
