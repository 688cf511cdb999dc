"""Deliveries to transactions: single messages or batch envelopes, poison set aside with a reason.

A batch envelope is validated in one pydantic call (the fast path). Only when that fails is it
read item by item, so that one bad transaction is dead-lettered alone and the rest are scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson
from aio_pika.abc import AbstractIncomingMessage
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vigil.data.transaction import DEFAULT_POLICY, EventTimePolicy
from vigil.streaming.messages import TRANSACTION_BATCH_TYPE, TransactionBatch, TransactionMessage


def validation_reason(error: ValidationError) -> str:
    """A short, header-friendly reason for a schema violation."""
    problems = [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors()]
    return ("invalid message: " + "; ".join(problems))[:500]


class _LooseBatch(BaseModel):
    """A batch envelope whose items are not validated yet."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    transactions: list[Any] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class Rejected:
    """What to dead-letter: the whole delivery (``item`` None) or one item of a batch."""

    body: bytes
    reason: str
    item: int | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One AMQP delivery, read: its valid transactions and what to dead-letter."""

    message: AbstractIncomingMessage
    transactions: list[TransactionMessage]
    rejected: list[Rejected]
    batched: bool

    @property
    def size(self) -> int:
        """Transactions it carries (at least 1, so that a poison delivery still counts)."""
        return max(1, len(self.transactions))


def _read_items(message: AbstractIncomingMessage, policy: EventTimePolicy) -> Delivery:
    """The slow path for a batch that failed validation: item by item."""
    try:
        envelope = _LooseBatch.model_validate_json(message.body)
    except ValidationError as error:
        return Delivery(message, [], [Rejected(message.body, validation_reason(error))], True)
    good: list[TransactionMessage] = []
    bad: list[Rejected] = []
    for index, item in enumerate(envelope.transactions):
        try:
            good.append(TransactionMessage.model_validate(item, context=policy))
        except ValidationError as error:
            bad.append(Rejected(orjson.dumps(item), validation_reason(error), index))
    return Delivery(message, good, bad, True)


def read_delivery(
    message: AbstractIncomingMessage, policy: EventTimePolicy = DEFAULT_POLICY
) -> Delivery:
    """Validate a delivery of the transactions queue (a single message or a batch envelope)."""
    if message.type == TRANSACTION_BATCH_TYPE:
        try:
            batch = TransactionBatch.model_validate_json(message.body, context=policy)
        except ValidationError:
            return _read_items(message, policy)
        return Delivery(message, batch.transactions, [], True)
    try:
        transaction = TransactionMessage.model_validate_json(message.body, context=policy)
    except ValidationError as error:
        return Delivery(message, [], [Rejected(message.body, validation_reason(error))], False)
    return Delivery(message, [transaction], [], False)
