"""Verdicts uploaded with training data count like the labels queue's: stored, then online.

The ``labels`` table feeds the delayed-label performance mart (business figures), and the
online state store's fraud sets feed the terminal and customer risk features; the state store
ignores a verdict for a transaction it does not hold.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy import Engine

from vigil.features import Label, OnlineFeatureComputer
from vigil.storage import LabelRecord, insert_labels
from vigil.storage.records import utc_now


def _store(engine: Engine, records: Sequence[LabelRecord]) -> None:
    with engine.begin() as connection:
        insert_labels(connection, records)


async def record_verdicts(
    engine: Engine, features: OnlineFeatureComputer, labels: Sequence[Label]
) -> None:
    """Store ``labels`` (a label is final: a repeat changes nothing), then feed the state store.

    ``labelled_at`` is when the verdict reached Vigil: an upload does not say when it was made.
    """
    received = utc_now()
    labelled_at = received.replace(tzinfo=None)  # the column is naive UTC, like the queue's
    records = [LabelRecord(v.transaction_id, int(v.fraud), labelled_at, received) for v in labels]
    await asyncio.to_thread(_store, engine, records)
    for label in labels:
        await features.store.aadd_label(label)
