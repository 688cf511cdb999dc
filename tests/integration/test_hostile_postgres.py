"""Hostile records on PostgreSQL and Redis: one bad record never fails or pollutes the others."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from api_support import api_settings, transaction, write_model
from conftest import private_pg_schema
from vigil.config import Settings
from vigil.serving import create_app
from vigil.storage import (
    GroupCommitWriter,
    PredictionRecord,
    RecordRejected,
    create_db_engine,
    fetch_predictions,
    upgrade_database,
)

pytestmark = pytest.mark.integration

POISON_EXTRAS: list[dict[str, Any]] = [{"note": "a\u0000b"}, {"big": 10**30}]


@pytest.fixture
def schema_url(postgres_url: str) -> Iterator[str]:
    with private_pg_schema(postgres_url, "vigil_hostile") as url:
        upgrade_database(url)
        yield url


def record(transaction_id: int, extra: dict[str, Any] | None = None) -> PredictionRecord:
    return PredictionRecord(
        transaction_id=transaction_id,
        tx_datetime=datetime(2018, 4, 1, 12),
        customer_id=1,
        terminal_id=2,
        tx_amount=10.0,
        score=0.1,
        label=0,
        threshold=0.5,
        reason_codes=[],
        model_version="m-1",
        latency_ms=0.4,
        extra=extra,
    )


def stored(url: str, ids: list[int]) -> set[int]:
    engine = create_db_engine(url)
    with engine.connect() as connection:
        rows = fetch_predictions(connection, ids)
    engine.dispose()
    return {int(row["transaction_id"]) for row in rows}


async def test_group_commit_isolates_records_postgres_refuses(schema_url: str) -> None:
    writer = GroupCommitWriter(schema_url, max_batch=128, connections=2)
    await writer.start()
    good = [record(i, {"i": i}) for i in range(300)]
    bad = [record(1000 + i, extra) for i, extra in enumerate(POISON_EXTRAS)]
    mixed = good[:150] + bad + good[150:]
    results = await asyncio.gather(*(writer.submit(r) for r in mixed), return_exceptions=True)
    await writer.stop()
    outcome = {r.transaction_id: result for r, result in zip(mixed, results, strict=True)}
    assert all(outcome[r.transaction_id] is None for r in good)
    assert all(isinstance(outcome[r.transaction_id], RecordRejected) for r in bad)
    assert stored(schema_url, [r.transaction_id for r in mixed]) == set(range(300))


@pytest.fixture
def settings(small_settings: Settings, schema_url: str, redis_url: str) -> Settings:
    base = api_settings(small_settings)
    storage = base.storage.model_copy(update={"database_url": schema_url, "state_url": redis_url})
    return base.model_copy(update={"storage": storage})


def test_concurrent_predictions_survive_poison_neighbours(
    settings: Settings, schema_url: str, redis_url: str
) -> None:
    write_model(settings, settings.inference.model_path, "model-pg")
    customer = random.randrange(10**9)
    first = random.randrange(10**12, 10**13)
    bodies = [
        transaction(first + i, customer_id=customer, tx_datetime=f"2018-09-30T10:{i % 60:02d}:00")
        for i in range(300)
    ]
    poison_ids = [first + 1000 + i for i in range(len(POISON_EXTRAS))]
    for tid, extra in zip(poison_ids, POISON_EXTRAS, strict=True):
        bodies.insert(100, transaction(tid, customer_id=customer, **extra))
    with TestClient(create_app(settings)) as client, ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda body: client.post("/predict", json=body), bodies))
    codes = {b["transaction_id"]: a.status_code for b, a in zip(bodies, answers, strict=True)}
    assert all(400 <= codes[tid] < 500 for tid in poison_ids)
    innocent = [b["transaction_id"] for b in bodies if b["transaction_id"] not in poison_ids]
    assert {codes[tid] for tid in innocent} == {200}
    assert stored(schema_url, [b["transaction_id"] for b in bodies]) == set(innocent)
    client_ = redis.Redis.from_url(redis_url, decode_responses=True)
    held = client_.zrange(f"vigil:features:c:{customer}:tx", 0, -1)
    client_.close()
    assert set(map(int, held)) == set(innocent)  # the refused left no trace in the state
