"""Broker message schemas: typed, versioned, validated where they enter.

Every message carries ``schema_version``; a consumer rejects (dead-letters) versions it does not
know. Bump the version and keep the old model readable when a field changes meaning.

Transactions and decisions travel one per AMQP message or many per message (the batch
envelopes, told apart by the AMQP ``type`` property): one AMQP message, one confirm and one
frame parse per batch is what lets a worker go beyond a few thousand messages per second.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vigil.data.transaction import Extras, FraudLabel, Id, TransactionFields

SCHEMA_VERSION = 1
CONTENT_TYPE = "application/json"
# AMQP ``type`` property of each message kind; a delivery without one is a single message.
TRANSACTION_TYPE = "vigil.transaction"
TRANSACTION_BATCH_TYPE = "vigil.transaction_batch"
DECISION_TYPE = "vigil.decision"
DECISION_BATCH_TYPE = "vigil.decision_batch"


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1

    def to_bytes(self) -> bytes:
        """JSON body for the broker."""
        return self.model_dump_json().encode()


class TransactionMessage(_Message, TransactionFields):
    """A card transaction to score (queue ``transactions``), under the transaction contract.

    Validate with ``context=`` an :class:`~vigil.data.transaction.EventTimePolicy` to apply the
    configured future tolerance (the default policy applies otherwise).
    """

    extra: Extras | None = None
    published_at: float | None = Field(
        None,
        allow_inf_nan=False,
        description="Producer's wall clock (epoch seconds), for end-to-end latency.",
    )

    def extra_fields(self) -> dict[str, Any] | None:
        """The message's ``extra`` object."""
        return self.extra


class DecisionMessage(_Message):
    """The decision for one transaction (exchange ``decisions``, key ``decision.<label>``)."""

    transaction_id: Id
    score: float = Field(ge=0, le=1)
    label: int = Field(ge=0, le=1)
    threshold: float
    reason_codes: list[str] = Field(
        description="Model inputs or feature families that pushed the score up most."
    )
    model_version: str
    decided_at: datetime
    published_at: float | None = None


class TransactionBatch(_Message):
    """Many transactions in one message (queue ``transactions``, type ``vigil.transaction_batch``).

    An invalid item is dead-lettered on its own; the other items are scored.
    """

    transactions: list[TransactionMessage] = Field(min_length=1)


class DecisionBatch(_Message):
    """Decisions with one label from one micro-batch (key ``decision.<label>``, batch type)."""

    decisions: list[DecisionMessage] = Field(min_length=1)


class LabelMessage(_Message):
    """A fraud verdict arriving later (queue ``labels``)."""

    transaction_id: Id
    tx_fraud: FraudLabel
    labelled_at: datetime


def decision_routing_key(label: int) -> str:
    """``decision.fraud`` or ``decision.legit``."""
    return "decision.fraud" if label else "decision.legit"
