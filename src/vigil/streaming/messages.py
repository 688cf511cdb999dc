"""Broker message schemas: typed, versioned, validated where they enter.

Every message carries ``schema_version``; a consumer rejects (dead-letters) versions it does not
know. Bump the version and keep the old model readable when a field changes meaning.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = 1
CONTENT_TYPE = "application/json"


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1

    def to_bytes(self) -> bytes:
        """JSON body for the broker."""
        return self.model_dump_json().encode()


class TransactionMessage(_Message):
    """A card transaction to score (queue ``transactions``)."""

    transaction_id: int = Field(ge=0)
    tx_datetime: datetime
    customer_id: int = Field(ge=0)
    terminal_id: int = Field(ge=0)
    tx_amount: float = Field(ge=0)
    extra: dict[str, Any] | None = None
    published_at: float | None = Field(
        None, description="Producer's wall clock (epoch seconds), for end-to-end latency."
    )

    @field_validator("tx_amount")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("tx_amount must be finite")
        return value


class DecisionMessage(_Message):
    """The decision for one transaction (exchange ``decisions``, key ``decision.<label>``)."""

    transaction_id: int = Field(ge=0)
    score: float = Field(ge=0, le=1)
    label: int = Field(ge=0, le=1)
    threshold: float
    reason_codes: list[str]
    model_version: str
    decided_at: datetime
    published_at: float | None = None


class LabelMessage(_Message):
    """A fraud verdict arriving later (queue ``labels``)."""

    transaction_id: int = Field(ge=0)
    tx_fraud: int = Field(ge=0, le=1)
    labelled_at: datetime


def decision_routing_key(label: int) -> str:
    """``decision.fraud`` or ``decision.legit``."""
    return "decision.fraud" if label else "decision.legit"
