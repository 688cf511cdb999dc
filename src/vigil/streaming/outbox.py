"""AMQP messages the worker sends: decisions (single or batched) and dead-letter copies."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypedDict

import aio_pika
import orjson
from aio_pika.abc import AbstractIncomingMessage

from vigil.storage import PredictionRecord
from vigil.streaming.messages import (
    CONTENT_TYPE,
    DECISION_BATCH_TYPE,
    DECISION_TYPE,
    SCHEMA_VERSION,
    decision_routing_key,
)
from vigil.streaming.topology import REASON_HEADER

Publication = tuple[aio_pika.Message, str]
BATCH_ITEM_HEADER = "x-vigil-batch-item"


class DecisionFields(TypedDict):
    """A :class:`~vigil.streaming.messages.DecisionMessage` as plain values, in its field order.

    The worker publishes thousands of decisions a second from records it stored itself (valid
    by construction): serialising these with orjson costs a fraction of building and dumping
    one pydantic model per decision. The bytes are the model's own (``model_dump_json``), which
    the tests check; consumers validate them with the model.
    """

    schema_version: int
    transaction_id: int
    score: float
    label: int
    threshold: float
    reason_codes: list[str]
    model_version: str
    decided_at: datetime
    published_at: float | None


def decision_fields(record: PredictionRecord, published_at: float | None) -> DecisionFields:
    """The decision message for a record as stored (new, or first stored for a repeated id)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "transaction_id": record.transaction_id,
        "score": record.score,
        "label": record.label,
        "threshold": record.threshold,
        "reason_codes": record.reason_codes,
        "model_version": record.model_version,
        "decided_at": record.created_at,
        "published_at": published_at,
    }


def _json(value: object) -> bytes:
    """JSON as pydantic writes it (UTC as ``Z``)."""
    return orjson.dumps(value, option=orjson.OPT_UTC_Z)


def _message(body: bytes, kind: str, message_id: str) -> aio_pika.Message:
    return aio_pika.Message(
        body=body,
        content_type=CONTENT_TYPE,
        type=kind,
        message_id=message_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


def decision_publications(
    decisions: Sequence[DecisionFields], batched: Sequence[bool]
) -> list[Publication]:
    """Decisions answered the way their transactions came: one by one, or one batch per label.

    A transaction sent alone gets a :class:`~vigil.streaming.messages.DecisionMessage`; those
    that came in batch envelopes share one :class:`~vigil.streaming.messages.DecisionBatch` per
    routing key (at most two messages, so two
    confirms, for the whole micro-batch).
    """
    publications: list[Publication] = []
    grouped: dict[int, list[DecisionFields]] = {}
    for decision, in_batch in zip(decisions, batched, strict=True):
        if in_batch:
            grouped.setdefault(decision["label"], []).append(decision)
        else:
            tid = decision["transaction_id"]
            message = _message(_json(decision), DECISION_TYPE, str(tid))
            publications.append((message, decision_routing_key(decision["label"])))
    for label, group in grouped.items():
        body = _json({"schema_version": SCHEMA_VERSION, "decisions": group})
        message_id = f"{group[0]['transaction_id']}+{len(group) - 1}"
        publications.append(
            (_message(body, DECISION_BATCH_TYPE, message_id), decision_routing_key(label))
        )
    return publications


def dead_letter_copy(
    original: AbstractIncomingMessage, queue: str, body: bytes, reason: str, item: int | None
) -> aio_pika.Message:
    """A persistent copy for the dead-letter queue; a batch item goes alone, marked as such."""
    headers = {**(original.headers or {}), REASON_HEADER: reason, "x-vigil-queue": queue}
    if item is not None:
        headers[BATCH_ITEM_HEADER] = item
    return aio_pika.Message(
        body=body,
        headers=headers,
        content_type=original.content_type or CONTENT_TYPE,
        # A lone item is a single transaction message again: it can be fixed and resent as is.
        type=original.type if item is None else None,
        message_id=original.message_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )
