"""Label feedback: the labels table, then the online fraud state (both idempotent)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial

from vigil.features import Label, OnlineFeatureComputer
from vigil.storage import LabelRecord
from vigil.streaming.persistence import StreamStore
from vigil.streaming.retry import retry_transient


def _as_datetime(value: object) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
    return value


async def apply_labels(
    store: StreamStore,
    features: OnlineFeatureComputer,
    records: Sequence[LabelRecord],
    stopping: asyncio.Event,
    observe_state_seconds: Callable[[float], None] | None = None,
) -> None:
    """Store labels and feed those whose transaction is known into the online risk state.

    ``observe_state_seconds`` receives each state-store update's duration, retries included.

    The state store applies a label only to transactions it still holds and uses it only for
    windows older than the label delay, so point-in-time correctness is kept there.
    """
    rows = await retry_transient(lambda: store.save_labels(records), "saving labels", stopping)
    frauds = {r.transaction_id: bool(r.tx_fraud) for r in records}
    for row in rows:
        transaction_id = int(row["transaction_id"])
        label = Label(
            transaction_id,
            int(row["customer_id"]),
            int(row["terminal_id"]),
            _as_datetime(row["tx_datetime"]),
            frauds[transaction_id],
        )
        started = time.perf_counter()
        await retry_transient(
            partial(features.store.aadd_label, label), "updating label state", stopping
        )
        if observe_state_seconds is not None:
            observe_state_seconds(time.perf_counter() - started)
