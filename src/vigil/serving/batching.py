"""Micro-batching of concurrent requests: one batch call for the requests of one loop turn.

Requests that arrive in the same event-loop iteration (the server reads every ready
connection per iteration) are handed together to one batch function: for ``/predict`` that
is one Redis script call, one model run and one writer submit for N transactions
instead of N of each, which is most of the per-request cost. Items keep their arrival order,
so each transaction still sees the ones before it in the online state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")

BatchFunction = Callable[[list[In]], Awaitable[Sequence[Out | BaseException]]]
"""Answers in item order; an exception in an item's place fails that item alone."""


class RequestBatcher(Generic[In, Out]):
    """``await submit(item)``: items of one loop iteration go through one batch call, in order."""

    def __init__(self, function: BatchFunction[In, Out], max_batch: int = 256) -> None:
        if max_batch <= 0:
            raise ValueError("max_batch must be > 0")
        self._function = function
        self._max_batch = max_batch
        self._items: list[In] = []
        self._futures: list[asyncio.Future[Out]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop of the batch being filled

    async def submit(self, item: In) -> Out:
        """The batch function's answer for ``item``; raises its error or its batch's error."""
        loop = self._loop
        if loop is None or not self._items:  # the first of this iteration: the loop is looked
            # up once a batch, not per item (on Python 3.11 a look-up is a getpid system call)
            loop = self._loop = asyncio.get_running_loop()
            loop.call_soon(self._flush)  # after the other requests of this iteration
        future: asyncio.Future[Out] = loop.create_future()
        self._items.append(item)
        self._futures.append(future)
        if len(self._items) >= self._max_batch:
            self._flush()
        return await future

    def _flush(self) -> None:
        items, futures = self._items, self._futures
        if items:
            self._items, self._futures = [], []
            task = asyncio.ensure_future(self._run(items, futures))
            self._tasks.add(task)  # keep a reference until done
            task.add_done_callback(self._tasks.discard)

    async def _run(self, items: list[In], futures: list[asyncio.Future[Out]]) -> None:
        try:
            results = await self._function(items)
        except Exception as error:  # every waiting request gets the batch's error
            for future in futures:
                if not future.done():
                    future.set_exception(error)
            return
        for future, result in zip(futures, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):  # this item alone failed
                future.set_exception(result)
            else:
                future.set_result(result)
