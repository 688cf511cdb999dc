"""Streaming without a broker: message contracts, micro-batching, retries, scoring, replay."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import ValidationError
from sqlalchemy import select

from onnx_factory import logistic_model, make_metadata, save
from vigil.config import BrokerConfig, DataConfig, Settings
from vigil.data import schema
from vigil.data.simulate import simulate_transactions
from vigil.features import feature_names
from vigil.features.offline import compute_features_frame
from vigil.storage import create_db_engine
from vigil.storage.errors import DatabaseUnavailable
from vigil.storage.tables import labels, predictions
from vigil.streaming import InProcessSink, StreamRuntime, TransactionMessage, build_asyncapi, replay
from vigil.streaming.batching import MicroBatcher
from vigil.streaming.messages import LabelMessage, decision_routing_key
from vigil.streaming.retry import ShuttingDown, retry_transient
from vigil.streaming.worker import validation_reason

REPO = Path(__file__).resolve().parents[2]
GOOD = {
    "transaction_id": 1,
    "tx_datetime": "2018-04-01T10:00:00",
    "customer_id": 2,
    "terminal_id": 3,
    "tx_amount": 12.5,
}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"tx_amount": -1.0}, "tx_amount"),
        ({"tx_amount": float("nan")}, "tx_amount"),
        ({"customer_id": None}, "customer_id"),
        ({"schema_version": 2}, "schema_version"),
        ({"surprise": 1}, "surprise"),
        ({"tx_datetime": "yesterday"}, "tx_datetime"),
    ],
)
def test_transaction_contract_names_the_bad_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        TransactionMessage.model_validate({**GOOD, **change})
    assert validation_reason(caught.value).startswith(f"invalid message: {field}:")


def test_messages_round_trip_with_their_version() -> None:
    message = TransactionMessage.model_validate(GOOD)
    again = TransactionMessage.model_validate_json(message.to_bytes())
    assert again == message
    assert again.schema_version == 1
    assert again.tx_datetime == datetime(2018, 4, 1, 10)
    with pytest.raises(ValidationError):
        LabelMessage.model_validate(
            {"transaction_id": 1, "tx_fraud": 2, "labelled_at": "2018-04-02"}
        )
    assert (decision_routing_key(1), decision_routing_key(0)) == (
        "decision.fraud",
        "decision.legit",
    )


def test_committed_asyncapi_document_is_the_generated_one() -> None:
    committed = yaml.safe_load((REPO / "docs" / "asyncapi.yaml").read_text())
    assert committed == build_asyncapi(BrokerConfig())
    assert set(committed["channels"]) >= {"transactions", "decisions", "labels"}


async def test_micro_batcher_splits_by_size_and_by_wait_and_drains_on_close() -> None:
    batches: list[list[int]] = []

    async def handle(batch: list[int]) -> None:
        batches.append(batch)

    batcher = MicroBatcher(handle, max_batch=3, max_wait_ms=20)  # type: ignore[arg-type]
    runner = asyncio.create_task(batcher.run())
    for item in range(7):
        await batcher.deliver(item)  # type: ignore[arg-type]
    await asyncio.sleep(0.1)  # the lone 7th waits at most 20 ms
    assert batches == [[0, 1, 2], [3, 4, 5], [6]]
    await batcher.deliver(7)  # type: ignore[arg-type]
    batcher.close()
    await asyncio.wait_for(runner, 1)
    assert batches[-1] == [7]


async def test_retry_backs_off_on_transient_errors_only() -> None:
    calls = {"n": 0}

    async def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise DatabaseUnavailable("down")
        return "ok"

    stopping = asyncio.Event()
    assert await retry_transient(flaky, "flaky", stopping, initial_s=0.001) == "ok"
    assert calls["n"] == 3

    async def broken() -> None:
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError, match="a bug"):
        await retry_transient(broken, "broken", stopping)

    async def down() -> None:
        raise ConnectionError("refused")

    stopping.set()
    with pytest.raises(ShuttingDown):
        await retry_transient(down, "down", stopping)


@pytest.fixture
def stream() -> pd.DataFrame:
    frame = simulate_transactions(DataConfig(n_customers=40, n_terminals=80, n_days=5, seed=1))
    return frame.sort_values([schema.TX_DATETIME, schema.TRANSACTION_ID]).reset_index(drop=True)


@pytest.fixture
def settings(small_settings: Settings, stream: pd.DataFrame) -> Settings:
    """SQLite and the in-process state store; a logistic model over every feature."""
    names = feature_names(small_settings.features)
    offline = compute_features_frame(small_settings.features, stream)
    weights = np.random.default_rng(1).normal(0, 1, len(names)) / (offline[names].abs().mean() + 1)
    metadata = make_metadata(names, offline[names].mean().tolist(), threshold=0.7)
    save(logistic_model(weights.tolist(), 0.0, metadata), small_settings.inference.model_path)
    return small_settings


async def test_in_process_replay_scores_like_offline_and_stores_labels(
    settings: Settings, stream: pd.DataFrame
) -> None:
    runtime = StreamRuntime.build(settings, source="batch")
    try:
        sink = InProcessSink(runtime.pipeline, runtime.features, runtime.store)
        summary = await replay(stream, sink, batch_size=16, label_after_s=0.0, progress=False)
    finally:
        await runtime.close()
    assert (summary.transactions, summary.labels) == (len(stream), len(stream))

    engine = create_db_engine(settings.storage.database_url)
    with engine.connect() as connection:
        stored = dict(
            connection.execute(select(predictions.c.transaction_id, predictions.c.score)).all()
        )
        label_count = len(connection.execute(select(labels.c.transaction_id)).all())
    engine.dispose()
    assert label_count == len(stream)
    # Label delay (7 days) exceeds the 5 simulated days: online risk features stay 0 as offline.
    from vigil.inference.scorer import OnnxScorer

    scorer = OnnxScorer.load(settings.inference.model_path)
    offline = compute_features_frame(settings.features, stream).set_index(schema.TRANSACTION_ID)
    expected = scorer.score(offline[list(scorer.feature_names)].to_numpy(np.float32))
    got = np.array([stored[t] for t in offline.index])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


async def test_replay_keeps_the_requested_rate() -> None:
    sent: list[int] = []

    async def send_transactions(messages: list[TransactionMessage]) -> None:
        sent.extend(m.transaction_id for m in messages)

    sink: Any = SimpleNamespace(send_transactions=send_transactions)
    frame = pd.DataFrame(
        {
            schema.TRANSACTION_ID: range(100),
            schema.TX_DATETIME: pd.date_range("2018-04-01", periods=100, freq="min"),
            schema.CUSTOMER_ID: 1,
            schema.TERMINAL_ID: 2,
            schema.TX_AMOUNT: 3.0,
        }
    )
    started = time.monotonic()
    summary = await replay(frame, sink, rate=1000, label_after_s=None, progress=False)
    assert time.monotonic() - started >= 0.09  # 100 transactions at 1,000/s
    assert sent == list(range(100))
    assert summary.labels == 0
