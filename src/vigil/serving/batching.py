"""Coalescing concurrent online-feature lookups into one state-store round trip.

Requests that arrive in the same event-loop iteration (uvicorn reads every ready connection
per iteration) share one ``afeatures_for_batch`` call: one pipelined Redis round trip for N
transactions instead of N, which is most of the state store's client-side cost. The batch is
recorded in arrival order, so each transaction still sees the ones before it.
"""

from __future__ import annotations

import asyncio

import numpy as np

from vigil.features import OnlineFeatureComputer
from vigil.features import Transaction as OnlineTransaction


class FeatureBatcher:
    """``await features_for(tx)`` with lookups of one loop iteration batched together."""

    def __init__(self, computer: OnlineFeatureComputer, max_batch: int = 256) -> None:
        self._computer = computer
        self._max_batch = max_batch
        self._pending: list[tuple[OnlineTransaction, asyncio.Future[np.ndarray]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def features_for(self, tx: OnlineTransaction) -> np.ndarray:
        """The feature vector [F] of ``tx``, recorded in the state store."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._pending.append((tx, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)  # after the other requests of this iteration
        elif len(self._pending) >= self._max_batch:
            self._flush()
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.ensure_future(self._lookup(batch))
            self._tasks.add(task)  # keep a reference until done
            task.add_done_callback(self._tasks.discard)

    async def _lookup(
        self, batch: list[tuple[OnlineTransaction, asyncio.Future[np.ndarray]]]
    ) -> None:
        try:
            matrix = await self._computer.afeatures_for_batch([tx for tx, _ in batch])
        except Exception as error:  # every waiting request gets the store's error
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), row in zip(batch, matrix, strict=True):
            if not future.done():
                future.set_result(row)
