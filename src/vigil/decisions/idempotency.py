"""Idempotency on ``transaction_id``: a repeated id is answered with the decision stored first.

A transaction id is decided once. The pipeline asks :class:`InFlight` which ids of a batch are
its to decide (:meth:`InFlight.claim`) before anything else, so that an id repeated inside the
batch, or claimed by a batch still being decided in this process, waits for that first
decision instead of being decided again. New ids are the overwhelming case and cost no
database round trip before they are decided: only the ids this process saw stored lately
(:class:`RecentIds`, a client's retry) are looked up first, and the insert itself tells which
of the others were stored before (by another process, or before a restart): those come back
``AlreadyStored`` and are answered from the stored record.

A repeat with the same payload (time, customer, terminal, amount) gets :class:`Replayed`, the
stored record: same score, label, threshold, reason features and model version, nothing
recorded or stored again. A repeat with another payload is a :class:`TransactionConflict`
(HTTP 409, a dead letter on the stream); the stored decision stands. Extra fields are not part
of the payload: they travel beside the transaction and never change a decision.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from vigil.data.transaction import TransactionFields
from vigil.storage import PredictionRecord, RecordRejected
from vigil.storage.records import ScoredTransaction

PAYLOAD = ("tx_datetime", "customer_id", "terminal_id", "tx_amount")
"""The fields a repeated id must carry unchanged to be the same transaction."""

Settled = PredictionRecord | BaseException
"""What the first of an id came to: its stored record, or why it was not stored."""


@dataclass(frozen=True, slots=True)
class Replayed:
    """The answer to a repeated transaction id: the decision stored the first time."""

    record: PredictionRecord


class TransactionConflict(Exception):
    """The id is already stored with another payload; the stored decision is unchanged."""

    def __init__(self, transaction_id: int, fields: Sequence[str]) -> None:
        super().__init__(
            f"transaction_id {transaction_id} is already stored with a different "
            f"{', '.join(fields)}; a transaction id is decided once"
        )
        self.transaction_id = transaction_id
        self.fields = list(fields)


def answer_repeat(tx: ScoredTransaction, first: Settled) -> Replayed | BaseException:
    """A repeat's answer from what the first of its id came to."""
    if isinstance(first, BaseException):
        if isinstance(first, RecordRejected):  # the same id is refused the same way
            return RecordRejected(tx.transaction_id, first.reason)
        return first
    differing = [name for name in PAYLOAD if getattr(tx, name) != getattr(first, name)]
    if differing:
        return TransactionConflict(tx.transaction_id, differing)
    return Replayed(first)


@dataclass(frozen=True, slots=True)
class Claim:
    """A batch's share of the ids in flight: what it decides and what it waits for."""

    claimed: list[int]  # positions of the first occurrence of ids this batch decides
    repeats: dict[int, int]  # position -> position of the same id earlier in the batch
    waiting: dict[int, asyncio.Future[Settled]]  # position -> another batch's decision


class InFlight:
    """Transaction ids being decided in this process (one registry per pipeline).

    An id's future is made only when a repeat has to wait for it: the common id, decided
    once, costs a dictionary entry and nothing more.
    """

    def __init__(self) -> None:
        self._futures: dict[int, asyncio.Future[Settled] | None] = {}

    def claim(self, transactions: Sequence[TransactionFields]) -> Claim:
        """Claim the ids no batch is deciding; no ``await``, so no other batch interleaves."""
        claimed: list[int] = []
        first: dict[int, int] = {}
        repeats: dict[int, int] = {}
        waiting: dict[int, asyncio.Future[Settled]] = {}
        futures = self._futures
        for position, tx in enumerate(transactions):
            tid = tx.transaction_id
            if tid in first:
                repeats[position] = first[tid]
            elif tid in futures:
                future = futures[tid]
                if future is None:
                    future = futures[tid] = asyncio.get_running_loop().create_future()
                waiting[position] = future
            else:
                first[tid] = position
                claimed.append(position)
                futures[tid] = None
        return Claim(claimed, repeats, waiting)

    def release(self, transaction_id: int, settled: Settled) -> None:
        """The id is decided (stored) or failed; whoever waits for it gets ``settled``."""
        future = self._futures.pop(transaction_id, None)
        if future is not None and not future.done():
            future.set_result(settled)


class RecentIds:
    """The ids this process saw stored lately, between ``size`` and twice as many.

    A repeat of one of them (a client retrying) is looked up before it is decided, so it never
    reaches the online state or the model; any other id goes straight to its decision. Two
    generations of sets: when the newer one is full it becomes the older one, so adding and
    testing cost one set operation each and memory stays bounded.
    """

    def __init__(self, size: int) -> None:
        if size <= 0:
            raise ValueError("size must be > 0")
        self._size = size
        self._newer: set[int] = set()
        self._older: set[int] = set()

    def __contains__(self, transaction_id: int) -> bool:
        return transaction_id in self._newer or transaction_id in self._older

    def add(self, transaction_ids: Iterable[int]) -> None:
        """Remember ids just stored (or found stored)."""
        self._newer.update(transaction_ids)
        if len(self._newer) >= self._size:
            self._older, self._newer = self._newer, set()
