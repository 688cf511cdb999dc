"""Micro-batching of broker deliveries: up to ``max_batch`` items or whatever came within a wait."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


def _one(_: object) -> int:
    return 1


class DeliveryBatcher(Generic[T]):
    """Buffers one consumer's deliveries and hands them to ``handle`` in order, batch by batch.

    ``size`` weighs a delivery (a batch envelope counts its transactions), so that a micro-batch
    holds about ``max_batch`` items whatever the producer packed into each message.
    """

    def __init__(
        self,
        handle: Callable[[list[T]], Awaitable[None]],
        max_batch: int,
        max_wait_ms: float,
        size: Callable[[T], int] = _one,
    ) -> None:
        self._handle = handle
        self._max_batch = max_batch
        self._max_wait_s = max_wait_ms / 1000.0
        self._size = size
        self._buffer: list[T] = []
        self._pending = 0
        self._event = asyncio.Event()
        self._closing = False

    async def deliver(self, item: T) -> None:
        """Consumer callback: buffer one delivery."""
        self._buffer.append(item)
        self._pending += self._size(item)
        if len(self._buffer) == 1 or self._pending >= self._max_batch:
            self._event.set()

    def discard(self, unwanted: Callable[[T], bool]) -> None:
        """Drop buffered deliveries not yet taken into a batch (they stay unacked)."""
        self._buffer = [item for item in self._buffer if not unwanted(item)]
        self._pending = sum(self._size(item) for item in self._buffer)

    def close(self) -> None:
        """Finish the buffered deliveries, then let :meth:`run` return."""
        self._closing = True
        self._event.set()

    def _take(self) -> list[T]:
        """The oldest deliveries up to ``max_batch`` items (at least one delivery)."""
        count = taken = 0
        for item in self._buffer:
            count += 1
            taken += self._size(item)
            if taken >= self._max_batch:
                break
        batch = self._buffer[:count]
        del self._buffer[:count]
        self._pending -= taken
        return batch

    async def run(self) -> None:
        """Hand batches to the handler until closed and drained."""
        while True:
            if not self._buffer:
                if self._closing:
                    return
                self._event.clear()
                await self._event.wait()
                continue
            if self._pending < self._max_batch and not self._closing:
                self._event.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._event.wait(), self._max_wait_s)
            await self._handle(self._take())
