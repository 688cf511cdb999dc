"""The state recovery stops when it is stopped, even while it stops its lease extender."""

from __future__ import annotations

import asyncio

import pytest

from vigil.decisions.recovery import _stopped


async def test_a_cancellation_during_the_extenders_stop_still_stops_the_caller() -> None:
    """`Runtime.close` cancels the recovery once; if that lands while the recovery waits for
    its extender to end, it must not be absorbed (the old ``suppress(CancelledError): await
    extender`` absorbed it, and the recovery ran on: a shutdown that never ended)."""
    unwinding = asyncio.Event()
    release = asyncio.Event()

    async def extender() -> None:  # takes a moment to unwind, as a Redis call in flight does
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            unwinding.set()
            await release.wait()
            raise

    child = asyncio.create_task(extender())
    await asyncio.sleep(0)
    caller = asyncio.create_task(_stopped(child))
    await unwinding.wait()  # the caller now waits for the extender's end
    caller.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert child.cancelled()


async def test_stopping_an_extender_that_failed_does_not_raise() -> None:
    async def failing() -> None:
        raise ConnectionError("gone")

    child = asyncio.create_task(failing())
    await asyncio.sleep(0)
    await _stopped(child)  # logged, not raised: the re-warm itself succeeded
    assert child.done()
