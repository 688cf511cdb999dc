"""Micro-batching of broker deliveries: up to ``max_batch`` or whatever came within a wait."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aio_pika.abc import AbstractIncomingMessage

log = logging.getLogger(__name__)

BatchHandler = Callable[[list[AbstractIncomingMessage]], Awaitable[None]]


class MicroBatcher:
    """Buffers one consumer's deliveries and hands them to ``handle`` in order, batch by batch."""

    def __init__(self, handle: BatchHandler, max_batch: int, max_wait_ms: float) -> None:
        self._handle = handle
        self._max_batch = max_batch
        self._max_wait_s = max_wait_ms / 1000.0
        self._buffer: list[AbstractIncomingMessage] = []
        self._event = asyncio.Event()
        self._closing = False

    async def deliver(self, message: AbstractIncomingMessage) -> None:
        """Consumer callback: buffer one delivery."""
        self._buffer.append(message)
        if len(self._buffer) == 1 or len(self._buffer) >= self._max_batch:
            self._event.set()

    def close(self) -> None:
        """Finish the buffered deliveries, then let :meth:`run` return."""
        self._closing = True
        self._event.set()

    async def run(self) -> None:
        """Hand batches to the handler until closed and drained."""
        while True:
            if not self._buffer:
                if self._closing:
                    return
                self._event.clear()
                await self._event.wait()
                continue
            if len(self._buffer) < self._max_batch and not self._closing:
                self._event.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._event.wait(), self._max_wait_s)
            batch = self._buffer[: self._max_batch]
            del self._buffer[: self._max_batch]
            await self._handle(batch)
