"""The HTTP adapter and the AMQP adapter decide and store identically (one decision path).

The same transactions, in the same order, go once through ``POST /predict`` and once through
RabbitMQ to the stream worker, each run on real Redis (the state flushed in between) and its
own SQLite file. Decisions and stored rows must be the same; only the fields that name the
transport or the clock (source, latency, arrival and commit times) may differ.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import numpy as np
import orjson
import pandas as pd
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select

from broker_support import decision_capture
from onnx_factory import logistic_model, make_metadata, save
from vigil.config import DataConfig, Settings, build_settings
from vigil.data import schema
from vigil.data.simulate import simulate_transactions
from vigil.decisions import Runtime
from vigil.features import feature_names
from vigil.features.offline import compute_features_frame
from vigil.serving import create_app
from vigil.storage import create_db_engine
from vigil.storage.tables import predictions, transactions
from vigil.streaming import StreamWorker
from vigil.streaming.messages import TransactionMessage

pytestmark = pytest.mark.integration

COUNT = 240
# What names the transport or the clock, not the decision.
TRANSPORT_FIELDS = {"source", "latency_ms", "received_at", "created_at"}


@pytest.fixture(scope="module")
def stream() -> pd.DataFrame:
    config = DataConfig(n_customers=60, n_terminals=120, n_days=4, seed=11)
    frame = simulate_transactions(config)
    ordered = frame.sort_values([schema.TX_DATETIME, schema.TRANSACTION_ID])
    return ordered.head(COUNT).reset_index(drop=True)


def settings_for(tmp_path: Path, name: str, redis_url: str, amqp_url: str) -> Settings:
    tag = uuid.uuid4().hex[:8]
    return build_settings(
        {
            "storage": {
                "database_url": f"sqlite:///{tmp_path / f'{name}.db'}",
                "state_url": redis_url,
            },
            "broker": {
                "url": amqp_url,
                "batch_size": 32,
                "transactions_queue": f"test-one-path-tx-{tag}",
                "labels_queue": f"test-one-path-labels-{tag}",
                "decisions_exchange": f"test-one-path-decisions-{tag}",
            },
            "inference": {"model_path": str(tmp_path / "model.onnx"), "reason_codes": 2},
            "serving": {"api_key": "test-key-0123"},
        }
    )


@pytest.fixture
def model(tmp_path: Path, stream: pd.DataFrame) -> Path:
    """A logistic model over every feature that flags a fair share (reason codes included)."""
    features = Settings().features
    names = feature_names(features)
    offline = compute_features_frame(features, stream)
    scale = offline[names].abs().mean().to_numpy() + 1.0
    weights = np.random.default_rng(5).normal(0, 1.5, len(names)) / scale
    metadata = make_metadata(names, offline[names].mean().tolist(), threshold=0.5)
    return save(logistic_model(weights.tolist(), 0.0, metadata), tmp_path / "model.onnx")


def bodies(frame: pd.DataFrame) -> list[dict[str, Any]]:
    columns = list(schema.TRANSACTION_COLUMNS)
    rows = frame[columns].astype({schema.TX_DATETIME: str}).to_dict(orient="records")
    return [{**row, "channel": "pos"} for row in rows]  # an extra field travels too


def stored_rows(database_url: str) -> list[dict[str, Any]]:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            joined = select(transactions, predictions).join(
                predictions, predictions.c.transaction_id == transactions.c.transaction_id
            )
            rows = [dict(row._mapping) for row in connection.execute(joined)]
    finally:
        engine.dispose()
    return sorted(
        ({k: v for k, v in row.items() if k not in TRANSPORT_FIELDS} for row in rows),
        key=lambda row: row["transaction_id"],
    )


def through_http(settings: Settings, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    with TestClient(create_app(settings)) as client:
        answers = [client.post("/predict", json=body) for body in requests]
    assert [a.status_code for a in answers] == [200] * len(requests)
    return [
        {
            "transaction_id": a["transaction_id"],
            "score": a["score"],
            "label": a["label"],
            "threshold": a["threshold"],
            "reason_codes": [r["feature"] for r in a["reason_codes"]],
            "model_version": a["model_version"],
        }
        for a in (answer.json() for answer in answers)
    ]


async def through_amqp(settings: Settings, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    config = settings.broker
    decided: list[dict[str, Any]] = []
    async with decision_capture(config) as (channel, capture):
        runtime = Runtime.build(settings, source="stream")
        worker = StreamWorker(config, runtime)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            await asyncio.wait_for(worker.ready.wait(), 10)
            for body in requests:  # one message each, in order, like the HTTP requests
                extra = {k: v for k, v in body.items() if k not in schema.TRANSACTION_COLUMNS}
                core = {k: body[k] for k in schema.TRANSACTION_COLUMNS}
                message = TransactionMessage.model_validate({**core, "extra": extra})
                await channel.default_exchange.publish(
                    aio_pika.Message(body=message.to_bytes()),
                    routing_key=config.transactions_queue,
                )
            deadline = time.monotonic() + 60
            while len(decided) < len(requests):
                assert time.monotonic() < deadline, f"only {len(decided)} decisions arrived"
                got = await capture.get(fail=False, no_ack=True)
                if got is None:
                    await asyncio.sleep(0.05)
                    continue
                payload = orjson.loads(got.body)
                decided.extend(payload.get("decisions", [payload]))
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)
            await runtime.close()
    keys = ("transaction_id", "score", "label", "threshold", "reason_codes", "model_version")
    by_id = {d["transaction_id"]: {k: d[k] for k in keys} for d in decided}
    return [by_id[body["transaction_id"]] for body in requests]


@pytest.fixture
def flush(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


async def test_http_and_amqp_adapters_decide_and_store_the_same(
    tmp_path: Path,
    model: Path,
    stream: pd.DataFrame,
    redis_url: str,
    amqp_url: str,
    flush: redis.Redis,
) -> None:
    requests = bodies(stream)
    http = settings_for(tmp_path, "http", redis_url, amqp_url)
    amqp = settings_for(tmp_path, "amqp", redis_url, amqp_url)

    by_http = await asyncio.to_thread(through_http, http, requests)
    flush.flushdb()  # the second run starts from the same (empty) online state
    by_amqp = await through_amqp(amqp, requests)

    assert sum(d["label"] for d in by_http) > 0, "the model flags some: reason codes compared"
    for h, a in zip(by_http, by_amqp, strict=True):
        assert a["score"] == pytest.approx(h["score"], abs=1e-6)
        assert {k: v for k, v in a.items() if k != "score"} == {
            k: v for k, v in h.items() if k != "score"
        }
    rows_http, rows_amqp = (
        stored_rows(http.storage.database_url),
        stored_rows(amqp.storage.database_url),
    )
    assert len(rows_http) == len(rows_amqp) == COUNT
    for h, a in zip(rows_http, rows_amqp, strict=True):
        assert a.pop("score") == pytest.approx(h.pop("score"), abs=1e-6)
        assert a == h
    assert rows_http[0]["extra"] == {"channel": "pos"}
