"""Streaming without a broker: message contracts, micro-batching, retries, scoring, replay."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta, timezone
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
from storage_support import prediction_record
from vigil.config import BrokerConfig, DataConfig, Settings
from vigil.data import schema
from vigil.data.simulate import simulate_transactions
from vigil.decisions import Runtime
from vigil.features import feature_names
from vigil.features.offline import compute_features_frame
from vigil.storage import PredictionRecord, create_db_engine
from vigil.storage.errors import DatabaseUnavailable
from vigil.storage.tables import labels, predictions
from vigil.streaming import InProcessSink, TransactionMessage, build_asyncapi, replay
from vigil.streaming.batching import DeliveryBatcher
from vigil.streaming.intake import read_delivery, validation_reason
from vigil.streaming.messages import (
    DECISION_BATCH_TYPE,
    DECISION_TYPE,
    TRANSACTION_BATCH_TYPE,
    DecisionBatch,
    DecisionMessage,
    LabelMessage,
    decision_routing_key,
)
from vigil.streaming.outbox import (
    BATCH_ITEM_HEADER,
    DecisionFields,
    dead_letter_copy,
    decision_fields,
    decision_publications,
)
from vigil.streaming.retry import ShuttingDown, retry_transient
from vigil.streaming.topology import REASON_HEADER

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
    assert set(committed["channels"]) >= {
        "transactions",
        "partitionedTransactions",
        "workerHeartbeats",
        "decisions",
        "labels",
    }


async def test_micro_batcher_splits_by_size_and_by_wait_and_drains_on_close() -> None:
    batches: list[list[int]] = []

    async def handle(batch: list[int]) -> None:
        batches.append(batch)

    batcher = DeliveryBatcher(handle, max_batch=3, max_wait_ms=20)  # type: ignore[arg-type]
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
    runtime = Runtime.build(settings, source="batch")
    try:
        sink = InProcessSink(runtime)
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


def first_messages(stream: pd.DataFrame, count: int) -> list[TransactionMessage]:
    """The stream's first transactions as broker messages."""
    rows = stream[list(GOOD)].head(count).to_dict(orient="records")
    return [TransactionMessage.model_validate(row) for row in rows]


async def test_a_hot_swap_reaches_the_next_micro_batch(
    settings: Settings, stream: pd.DataFrame, tmp_path: Path
) -> None:
    """Decisions name the model that made them; a model in another feature order still works."""
    names = feature_names(settings.features)
    weights = np.linspace(-0.5, 0.5, len(names))
    swapped = make_metadata(names[::-1], threshold=0.5, model_version="swapped-2")
    save(logistic_model(weights[::-1].tolist(), 0.1, swapped), tmp_path / "swapped.onnx")
    same_order = make_metadata(names, threshold=0.5, model_version="reference")
    save(logistic_model(weights.tolist(), 0.1, same_order), tmp_path / "reference.onnx")
    messages = first_messages(stream, 64)
    runtime = Runtime.build(settings, source="stream")
    try:
        before = await runtime.pipeline.score(messages[:32])
        runtime.models.deploy(tmp_path / "swapped.onnx")
        after = await runtime.pipeline.score(messages[32:])
    finally:
        await runtime.close()

    assert {d.model_version for d in before.decisions} == {"test-1"}
    assert {d.model_version for d in after.decisions} == {"swapped-2"}
    assert {r.model_version for r in after.records} == {"swapped-2"}
    # Same weights per feature name: the reordered model scores like one in online order.
    from vigil.inference.scorer import OnnxScorer

    expected = OnnxScorer.load(tmp_path / "reference.onnx").score(after.features)
    np.testing.assert_allclose([d.score for d in after.decisions], expected, rtol=1e-5, atol=1e-6)


async def test_a_challenger_scores_the_stream_in_shadow(
    settings: Settings, stream: pd.DataFrame, tmp_path: Path
) -> None:
    """Its scores are stored beside the champion's; decisions stay the champion's."""
    names = feature_names(settings.features)
    metadata = make_metadata(names[::-1], threshold=0.5, model_version="shadow-9")
    weights = np.linspace(-0.3, 0.3, len(names))[::-1].tolist()
    save(logistic_model(weights, -0.2, metadata), tmp_path / "shadow.onnx")
    messages = first_messages(stream, 32)
    runtime = Runtime.build(settings, source="stream")
    try:
        alone = await runtime.pipeline.score(messages[:16])
        runtime.models.set_challenger(tmp_path / "shadow.onnx")
        shadowed = await runtime.pipeline.score(messages[16:])
    finally:
        await runtime.close()

    from vigil.inference.scorer import OnnxScorer

    challenger = OnnxScorer.load(tmp_path / "shadow.onnx")
    expected = challenger.score(shadowed.features[:, ::-1])  # the challenger's own order
    got = [r.challenger_score for r in shadowed.records]
    np.testing.assert_allclose(np.array(got, dtype=float), expected, rtol=1e-5, atol=1e-6)
    assert {r.challenger_version for r in shadowed.records} == {"shadow-9"}
    champion = OnnxScorer.load(settings.inference.model_path)  # decides as if alone
    np.testing.assert_allclose(
        [d.score for d in shadowed.decisions], champion.score(shadowed.features), rtol=1e-5
    )
    assert {d.model_version for d in shadowed.decisions} == {"test-1"}
    assert all(r.challenger_score is None for r in alone.records)


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


def delivery(body: bytes, kind: str | None = None) -> Any:
    """A stand-in for an aio-pika delivery: what :func:`read_delivery` looks at."""
    return SimpleNamespace(body=body, type=kind, redelivered=False, headers={})


def batch_body(*items: object) -> bytes:
    return json.dumps({"schema_version": 1, "transactions": list(items)}).encode()


def test_a_valid_batch_envelope_is_read_whole() -> None:
    second = {**GOOD, "transaction_id": 2}
    read = read_delivery(delivery(batch_body(GOOD, second), TRANSACTION_BATCH_TYPE))
    assert [t.transaction_id for t in read.transactions] == [1, 2]
    assert (read.rejected, read.batched, read.size) == ([], True, 2)


def test_a_poison_item_is_set_aside_alone_and_the_rest_is_kept() -> None:
    bad = {**GOOD, "transaction_id": 7, "tx_amount": -1.0}
    body = batch_body(GOOD, bad, 42, {**GOOD, "transaction_id": 3})
    read = read_delivery(delivery(body, TRANSACTION_BATCH_TYPE))
    assert [t.transaction_id for t in read.transactions] == [1, 3]
    assert [(r.item, json.loads(r.body)) for r in read.rejected] == [(1, bad), (2, 42)]
    assert read.rejected[0].reason.startswith("invalid message: tx_amount:")
    assert read.rejected[1].reason.startswith("invalid message: body:")


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        json.dumps({"schema_version": 1, "transactions": []}).encode(),
        json.dumps({"schema_version": 2, "transactions": [GOOD]}).encode(),
    ],
)
def test_a_broken_envelope_is_rejected_whole(body: bytes) -> None:
    read = read_delivery(delivery(body, TRANSACTION_BATCH_TYPE))
    assert read.transactions == []
    assert [(r.body, r.item) for r in read.rejected] == [(body, None)]
    assert read.size == 1


def test_single_messages_stay_supported_and_a_batch_without_its_type_is_poison() -> None:
    single = read_delivery(delivery(json.dumps(GOOD).encode()))
    assert [t.transaction_id for t in single.transactions] == [1]
    assert single.batched is False
    untyped = read_delivery(delivery(batch_body(GOOD)))
    assert untyped.transactions == []
    assert "transactions: Extra inputs are not permitted" in untyped.rejected[0].reason


def stored(
    transaction_id: int,
    label: int,
    decided_at: datetime = datetime(2026, 1, 1),
    score: float | None = None,
    reasons: tuple[str, ...] = (),
) -> PredictionRecord:
    score = (0.9 if label else 0.1) if score is None else score
    return prediction_record(
        transaction_id, score=score, label=label, reason_codes=reasons, created_at=decided_at
    )


def decision(transaction_id: int, label: int) -> DecisionFields:
    return decision_fields(stored(transaction_id, label), None)


@pytest.mark.parametrize(
    "decided_at",
    [
        datetime(2026, 12, 6, 3, 4, 5, 123456, tzinfo=UTC),  # the worker's clock
        datetime(2026, 12, 6, 3, 4, 5, tzinfo=UTC),  # no microseconds
        datetime(2026, 12, 6, 3, 4, 5, 10),  # naive (a stored record read back)
        datetime(2026, 12, 6, 3, 4, 5, 7, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
    ],
)
@pytest.mark.parametrize("published_at", [None, 1765000000.123456, 0.0])
def test_decision_bytes_are_the_models_own(
    decided_at: datetime, published_at: float | None
) -> None:
    records = [
        stored(1, 1, decided_at, 0.1 + 0.2, ("tx_amount", "terminal_risk_7d")),
        stored(2**63 - 1, 1, decided_at, 1.0),
        stored(3, 1, decided_at, 5e-324),
    ]
    fields = [decision_fields(r, published_at) for r in records]
    assert list(fields[0]) == list(DecisionMessage.model_fields)
    assert (fields[0]["decided_at"], fields[0]["published_at"]) == (decided_at, published_at)
    models = [DecisionMessage.model_validate(f) for f in fields]  # the schema of record
    (single, _), (batch, _) = decision_publications(fields, [False, True, True])[:2]
    assert single.body == models[0].to_bytes()
    assert batch.body == DecisionBatch(decisions=models[1:]).to_bytes()


def test_batched_decisions_go_out_as_one_message_per_label_singles_alone() -> None:
    decisions = [decision(1, 0), decision(2, 1), decision(3, 0), decision(4, 0)]
    publications = decision_publications(decisions, [True, True, False, True])
    shapes = [(m.type, key, json.loads(m.body)) for m, key in publications]
    assert [(kind, key) for kind, key, _ in shapes] == [
        (DECISION_TYPE, "decision.legit"),
        (DECISION_BATCH_TYPE, "decision.legit"),
        (DECISION_BATCH_TYPE, "decision.fraud"),
    ]
    assert shapes[0][2]["transaction_id"] == 3
    assert [d["transaction_id"] for d in shapes[1][2]["decisions"]] == [1, 4]
    assert [d["transaction_id"] for d in shapes[2][2]["decisions"]] == [2]
    again = DecisionBatch.model_validate_json(publications[1][0].body)
    assert [d.model_dump() for d in again.decisions] == [decisions[0], decisions[3]]


def test_a_dead_lettered_batch_item_is_marked_and_loses_the_batch_type() -> None:
    original: Any = SimpleNamespace(
        headers={"h": 1}, content_type=None, type=TRANSACTION_BATCH_TYPE, message_id="9+3"
    )
    copy = dead_letter_copy(original, "tx", b"{}", "invalid message: x", 2)
    assert copy.headers == {
        "h": 1,
        REASON_HEADER: "invalid message: x",
        "x-vigil-queue": "tx",
        BATCH_ITEM_HEADER: 2,
    }
    assert (copy.type, copy.body, copy.message_id) == (None, b"{}", "9+3")


async def test_micro_batcher_weighs_deliveries_by_their_items() -> None:
    batches: list[list[int]] = []

    async def handle(batch: list[int]) -> None:
        batches.append(batch)

    batcher = DeliveryBatcher(handle, max_batch=10, max_wait_ms=20, size=lambda n: n)
    runner = asyncio.create_task(batcher.run())
    for items in (4, 4, 4, 30, 1):
        await batcher.deliver(items)
    batcher.close()
    await asyncio.wait_for(runner, 1)
    assert batches == [[4, 4, 4], [30], [1]]


class _MessageOfAClosedChannel:
    """An unacked delivery whose channel died with its connection (broker cut)."""

    async def nack(self, requeue: bool = True) -> None:
        from aiormq.exceptions import ChannelInvalidStateError

        raise ChannelInvalidStateError("no active transport in channel")


async def test_requeue_survives_a_closed_channel() -> None:
    """Found by the stress campaign: a nack on a dead channel raised, killed the micro-batcher
    and left the worker connected but idle after the robust connection came back. The broker
    redelivers a closed channel's unacked messages by itself, so the worker carries on."""
    from vigil.streaming import StreamWorker

    runtime: Any = SimpleNamespace(pipeline=None)
    worker = StreamWorker(BrokerConfig(url="amqp://guest:guest@127.0.0.1:1/"), runtime)
    worker._stopping.set()  # no pause after the requeue
    batch = [_MessageOfAClosedChannel(), _MessageOfAClosedChannel()]
    await worker._requeue(batch, ConnectionResetError("connection reset"))  # type: ignore[arg-type]
