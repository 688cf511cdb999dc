"""Retrying transient failures (database or Redis unreachable) with exponential backoff."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from vigil.storage.engine import is_unavailable_error
from vigil.storage.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

_TRANSIENT = (
    ConnectionError,
    TimeoutError,
    RedisConnectionError,
    RedisTimeoutError,
    DatabaseUnavailable,
)


class ShuttingDown(Exception):
    """Raised instead of retrying further once shutdown was requested."""


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` means a dependency is briefly unreachable (retry, keep the message)."""
    return isinstance(error, _TRANSIENT) or is_unavailable_error(error)


async def retry_transient(
    operation: Callable[[], Awaitable[T]],
    what: str,
    stopping: asyncio.Event,
    initial_s: float = 0.05,
    max_s: float = 2.0,
) -> T:
    """Run ``operation`` until it succeeds; transient errors back off, others propagate."""
    delay = initial_s
    while True:
        try:
            return await operation()
        except Exception as error:
            if not is_transient(error):
                raise
            if stopping.is_set():
                raise ShuttingDown(f"gave up {what}: shutting down during an outage") from error
            log.warning("%s failed (%s); retrying in %.2f s", what, error, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_s)
