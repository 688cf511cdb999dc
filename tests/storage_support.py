"""Helpers for the storage tests: hand-made scored transactions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from vigil.storage import PredictionRecord


def prediction_record(
    transaction_id: int,
    *,
    tx_datetime: datetime = datetime(2018, 4, 1, 12),
    customer_id: int = 1,
    terminal_id: int = 2,
    tx_amount: float = 10.0,
    score: float = 0.1,
    label: int | None = None,
    threshold: float = 0.5,
    reason_codes: Sequence[str] = (),
    model_version: str = "m-1",
    latency_ms: float = 0.4,
    **optional: Any,
) -> PredictionRecord:
    """A scored transaction with these fields; the decision (``label``) is ``score >=
    threshold`` unless given. ``optional``: the record's other fields (``source``,
    ``received_at``, ``created_at``, ...)."""
    return PredictionRecord(
        transaction_id=transaction_id,
        tx_datetime=tx_datetime,
        customer_id=customer_id,
        terminal_id=terminal_id,
        tx_amount=tx_amount,
        score=score,
        label=int(score >= threshold) if label is None else label,
        threshold=threshold,
        reason_codes=list(reason_codes),
        model_version=model_version,
        latency_ms=latency_ms,
        **optional,
    )
