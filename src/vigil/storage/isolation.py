"""Poison isolation: a batch the database refuses is halved until each refused record stands alone.

One bad record (a value the database or its driver cannot take) must not fail the records it
happened to share a commit with. :func:`write_isolating` writes the whole batch first (the
common case: one commit); when the batch is refused for a reason other than an outage, it
writes each half in turn, recursively, so ``k`` poison records among ``n`` cost about
``2 k log2 n`` extra commits and every other record is stored. Writes are idempotent on
``transaction_id``, so a half that was committed before an outage is harmless to retry.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import TypeVar

from vigil.storage.engine import is_unavailable_error
from vigil.storage.errors import AlreadyStored, DatabaseUnavailable, RecordRejected

log = logging.getLogger(__name__)

R = TypeVar("R")


def is_outage(error: BaseException) -> bool:
    """Whether ``error`` says the database is unreachable (retry everything later)."""
    return isinstance(error, DatabaseUnavailable) or is_unavailable_error(error)


async def write_isolating(
    write: Callable[[Sequence[R]], Awaitable[Collection[int]]],
    records: Sequence[R],
    transaction_id: Callable[[R], int],
) -> list[RecordRejected | None]:
    """Write ``records``; per record ``None`` (stored now), :class:`AlreadyStored` (the id was
    stored before: ``write`` did not insert it) or why the database refused it alone.

    Outages propagate unchanged (the caller retries or fails the whole batch).
    """
    try:
        inserted = await write(records)
    except Exception as error:
        if is_outage(error):
            raise
        if len(records) == 1:
            tid = transaction_id(records[0])
            log.warning("the database refused transaction %d: %s", tid, error)
            return [RecordRejected(tid, type(error).__name__)]
        middle = len(records) // 2
        first = await write_isolating(write, records[:middle], transaction_id)
        return first + await write_isolating(write, records[middle:], transaction_id)
    if len(inserted) == len(records):  # inserted ids are the records' own: every one stored
        return [None] * len(records)
    ids = [transaction_id(record) for record in records]
    return [None if tid in inserted else AlreadyStored(tid) for tid in ids]
