"""The stream worker against real RabbitMQ, PostgreSQL and Redis: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import numpy as np
import orjson
import pandas as pd
import pytest
import redis
from prometheus_client import Histogram
from sqlalchemy import create_engine, make_url, select, text

from broker_support import decision_capture
from conftest import private_pg_schema
from onnx_factory import logistic_model, make_metadata, save
from vigil.config import BrokerConfig, DataConfig, Settings, build_settings
from vigil.data import schema
from vigil.data.simulate import simulate_transactions
from vigil.decisions import Runtime
from vigil.features import feature_names
from vigil.features.offline import compute_features_frame
from vigil.inference.scorer import OnnxScorer
from vigil.monitoring import VigilMetrics, create_metrics
from vigil.storage import create_db_engine, upgrade_database
from vigil.storage.tables import labels, predictions, transactions
from vigil.streaming import StreamWorker
from vigil.streaming.messages import (
    DECISION_BATCH_TYPE,
    TRANSACTION_BATCH_TYPE,
    LabelMessage,
    TransactionBatch,
    TransactionMessage,
)
from vigil.streaming.outbox import BATCH_ITEM_HEADER
from vigil.streaming.topology import REASON_HEADER, dead_letter_queue

pytestmark = pytest.mark.integration

N_DAYS = 6  # shorter than the label delay: offline and online risk features are both 0


@pytest.fixture(scope="module")
def stream() -> pd.DataFrame:
    """A small simulated stream, in time order."""
    config = DataConfig(n_customers=400, n_terminals=800, n_days=N_DAYS, seed=3)
    frame = simulate_transactions(config)
    return frame.sort_values([schema.TX_DATETIME, schema.TRANSACTION_ID]).reset_index(drop=True)


@pytest.fixture
def pg_schema_url(postgres_url: str) -> Iterator[str]:
    """A private schema (and application name) so concurrent runs never clash."""
    with private_pg_schema(postgres_url, "vigil_stream") as url:
        yield url


def write_model(settings_features: object, offline: pd.DataFrame, path: Path) -> Path:
    """A logistic model over every feature, weights scaled to the features' magnitudes."""
    names = feature_names(settings_features)  # type: ignore[arg-type]
    scale = offline[names].abs().mean().to_numpy() + 1.0
    weights = np.random.default_rng(0).normal(0, 1.5, len(names)) / scale
    metadata = make_metadata(names, offline[names].mean().tolist(), threshold=0.6)
    return save(logistic_model(weights.tolist(), -0.5, metadata), path)


def stream_settings(
    tmp_path: Path,
    database_url: str,
    amqp_url: str,
    redis_url: str,
    frame: pd.DataFrame,
    **broker: object,
) -> Settings:
    """Unique queue names, the given database, Redis state, a model file for ``frame``."""
    tag = uuid.uuid4().hex[:8]
    tree = {
        "storage": {"database_url": database_url, "state_url": redis_url},
        "broker": {
            "url": amqp_url,
            "batch_size": 128,
            "prefetch": 256,
            "transactions_queue": f"test-tx-{tag}",
            "labels_queue": f"test-labels-{tag}",
            "decisions_exchange": f"test-decisions-{tag}",
            **broker,
        },
        "inference": {"model_path": str(tmp_path / "model.onnx")},
    }
    base = build_settings(tree)
    write_model(
        base.features, compute_features_frame(base.features, frame), tmp_path / "model.onnx"
    )
    return base


@pytest.fixture
def settings(
    tmp_path: Path, pg_schema_url: str, amqp_url: str, redis_url: str, stream: pd.DataFrame
) -> Settings:
    """Unique queue names, a private schema, Redis state, a model file."""
    return stream_settings(tmp_path, pg_schema_url, amqp_url, redis_url, stream)


@dataclass
class Broker:
    """A test-side connection: publish, capture decisions, read dead letters."""

    channel: aio_pika.abc.AbstractChannel
    config: BrokerConfig
    decisions: aio_pika.abc.AbstractQueue

    async def publish(self, queue: str, bodies: list[bytes], kind: str | None = None) -> None:
        exchange = self.channel.default_exchange
        await asyncio.gather(
            *(
                exchange.publish(aio_pika.Message(body=b, type=kind), routing_key=queue)
                for b in bodies
            )
        )

    async def drain(
        self, queue: aio_pika.abc.AbstractQueue
    ) -> list[aio_pika.abc.AbstractIncomingMessage]:
        got = []
        while (message := await queue.get(fail=False, no_ack=True)) is not None:
            got.append(message)
        return got


@pytest.fixture
async def broker(settings: Settings) -> AsyncIterator[Broker]:
    async with decision_capture(settings.broker) as (channel, capture):
        yield Broker(channel, settings.broker, capture)


def transaction_messages(frame: pd.DataFrame) -> list[TransactionMessage]:
    columns = list(schema.TRANSACTION_COLUMNS)
    return [
        TransactionMessage(**dict(zip(columns, row, strict=True)))
        for row in frame[columns].itertuples(index=False, name=None)
    ]


def transaction_bodies(frame: pd.DataFrame) -> list[bytes]:
    return [message.to_bytes() for message in transaction_messages(frame)]


def stored_ids(url: str) -> list[int]:
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            # One statement, one snapshot: both ids, or a mismatch a commit cannot explain.
            rows = connection.execute(
                select(predictions.c.transaction_id, transactions.c.transaction_id).join_from(
                    predictions,
                    transactions,
                    predictions.c.transaction_id == transactions.c.transaction_id,
                    full=True,
                )
            ).all()
    except Exception:  # tables not created yet by the worker
        return []
    finally:
        engine.dispose()
    assert all(p == t for p, t in rows), "a prediction without its transaction or vice versa"
    return [p for p, _ in rows]


async def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class RunningWorker:
    stop: asyncio.Event
    task: asyncio.Task[None]
    runtime: Runtime
    worker: StreamWorker

    async def shutdown(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 20)
        await self.runtime.close()


async def start_worker(settings: Settings, metrics: VigilMetrics | None = None) -> RunningWorker:
    runtime = Runtime.build(settings, source="stream", metrics=metrics)
    worker = StreamWorker(settings.broker, runtime, metrics)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await asyncio.wait_for(worker.ready.wait(), 10)
    return RunningWorker(stop, task, runtime, worker)


async def test_scores_like_offline_dead_letters_poison_and_applies_labels(
    settings: Settings, broker: Broker, stream: pd.DataFrame
) -> None:
    good = stream.head(600)
    bodies = transaction_bodies(good)
    poison = {
        b"{not json": "invalid message",
        json.dumps({"transaction_id": 10**9, "tx_datetime": "2018-04-01T00:00:00"}).encode(): (
            "customer_id: Field required"
        ),
        TransactionMessage.model_construct(
            transaction_id=10**9 + 1,
            tx_datetime=good.tx_datetime[0],
            customer_id=1,
            terminal_id=1,
            tx_amount=-5.0,
            schema_version=1,
        )
        .model_dump_json()
        .encode(): "tx_amount: Input should be greater than or equal to 0",
        bodies[0].replace(b'"schema_version":1', b'"schema_version":2'): "schema_version",
    }
    mixed = bodies[:200] + list(poison) + bodies[200:]
    metrics = create_metrics()
    worker = await start_worker(settings, metrics)
    await broker.publish(settings.broker.transactions_queue, mixed)
    await wait_until(lambda: len(stored_ids(settings.storage.database_url)) >= 600, 30, "600 rows")

    label_bodies = [
        LabelMessage(transaction_id=int(t), tx_fraud=1, labelled_at=good.tx_datetime[0]).to_bytes()
        for t in good.transaction_id[:5]
    ] + [b'{"transaction_id": -1}']
    await broker.publish(settings.broker.labels_queue, label_bodies)
    engine = create_db_engine(settings.storage.database_url)

    def label_count() -> int:
        with engine.connect() as connection:
            return len(connection.execute(select(labels.c.transaction_id)).all())

    await wait_until(lambda: label_count() == 5, 10, "5 labels")
    engine.dispose()
    await worker.shutdown()

    assert sorted(stored_ids(settings.storage.database_url)) == sorted(good.transaction_id)
    decisions = {}
    for message in await broker.drain(broker.decisions):
        body = json.loads(message.body)
        decisions[body["transaction_id"]] = body
        assert message.routing_key == ("decision.fraud" if body["label"] else "decision.legit")
    assert sorted(decisions) == sorted(good.transaction_id)

    # Parity: every published score is the model applied to the OFFLINE features.
    offline = compute_features_frame(settings.features, good).set_index(schema.TRANSACTION_ID)
    scorer = OnnxScorer.load(settings.inference.model_path)
    expected = scorer.score(offline[list(scorer.feature_names)].to_numpy(np.float32))
    published = np.array([decisions[t]["score"] for t in offline.index])
    np.testing.assert_allclose(published, expected, rtol=1e-5, atol=1e-6)
    assert 0 < sum(d["label"] for d in decisions.values()) < 600

    dead = await broker.drain(
        await broker.channel.get_queue(dead_letter_queue(settings.broker.transactions_queue))
    )
    assert sorted(m.body for m in dead) == sorted(poison)
    for message in dead:
        assert poison[message.body] in message.headers[REASON_HEADER]
    dead_labels = await broker.drain(
        await broker.channel.get_queue(dead_letter_queue(settings.broker.labels_queue))
    )
    assert [m.body for m in dead_labels] == [b'{"transaction_id": -1}']

    # the state store's round trips: at least one per scored micro-batch, one per known label
    record_trips = metrics.state_store_latency.labels(operation="record")
    label_trips = metrics.state_store_latency.labels(operation="label")
    batches = metrics.stream_batch_size.collect()[0].samples
    batch_count = next(s.value for s in batches if s.name.endswith("_count"))
    assert histogram_count(record_trips) >= 1
    assert histogram_count(record_trips) <= batch_count
    assert histogram_count(label_trips) == 5
    served = {
        s.labels["role"]: s.labels["model_version"] for s in metrics.model_info.collect()[0].samples
    }
    assert served == {"champion": scorer.model_version}  # the worker shows what it serves


def histogram_count(child: Histogram) -> float:
    """How many observations a labelled histogram child holds."""
    return next(s.value for s in child.collect()[0].samples if s.name.endswith("_count"))


def terminate_backends(admin_url: str, application_name: str) -> int:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    text(
                        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                        "FROM pg_stat_activity WHERE application_name = :name"
                    ),
                    {"name": application_name},
                ).scalar_one()
            )
    finally:
        engine.dispose()


async def test_database_outage_mid_stream_loses_nothing(
    settings: Settings, broker: Broker, stream: pd.DataFrame, postgres_url: str
) -> None:
    frame = stream.head(1500)
    worker = await start_worker(settings)
    url = settings.storage.database_url
    await broker.publish(settings.broker.transactions_queue, transaction_bodies(frame))
    await wait_until(lambda: len(stored_ids(url)) >= 200, 30, "first rows")
    # The database "goes away" for about a second: every connection the worker opens is killed.
    name = make_url(url).query["application_name"]
    killed = 0
    for _ in range(20):
        killed += await asyncio.to_thread(terminate_backends, postgres_url, name)
        await asyncio.sleep(0.05)
    await wait_until(lambda: len(stored_ids(url)) == 1500, 30, "the backlog to drain")
    await worker.shutdown()
    assert killed >= 1
    assert sorted(stored_ids(url)) == sorted(frame.transaction_id)
    published = [json.loads(m.body)["transaction_id"] for m in await broker.drain(broker.decisions)]
    assert set(published) == set(frame.transaction_id)


def worker_process(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    """``vigil worker`` in a subprocess, configured through VIGIL_* variables."""
    env = dict(os.environ)
    for key, value in {
        "STORAGE__DATABASE_URL": settings.storage.database_url,
        "STORAGE__STATE_URL": settings.storage.state_url,
        "BROKER__URL": settings.broker.url,
        "BROKER__TRANSACTIONS_QUEUE": settings.broker.transactions_queue,
        "BROKER__LABELS_QUEUE": settings.broker.labels_queue,
        "BROKER__DECISIONS_EXCHANGE": settings.broker.decisions_exchange,
        "INFERENCE__MODEL_PATH": str(settings.inference.model_path),
    }.items():
        env[f"VIGIL_{key}"] = str(value)
    log = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "vigil", "worker", "--config", str(log_path.parent / "none.yaml")],
        env=env,
        stdout=log,
        stderr=log,
    )


def assert_each_id_decided_once(published: list[dict[str, object]], ids: pd.Series) -> None:
    """Every id has a decision; duplicates (redeliveries) all carry the same score."""
    by_id: dict[object, set[object]] = {}
    for body in published:
        by_id.setdefault(body["transaction_id"], set()).add(body["score"])
    assert set(by_id) == set(ids)
    assert all(len(scores) == 1 for scores in by_id.values()), "a republished decision changed"


async def crash_then_drain(settings: Settings, expected: int) -> None:
    """Cancel a worker mid-stream (deliveries never acked), then let a new one drain the rest."""
    url = settings.storage.database_url
    first = await start_worker(settings)
    await wait_until(lambda: len(stored_ids(url)) >= 300, 30, "the first worker to start")
    first.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await first.task
    await first.runtime.close()
    assert len(stored_ids(url)) < expected, "the crash must land mid-stream"
    second = await start_worker(settings)
    await wait_until(lambda: len(stored_ids(url)) == expected, 30, "the backlog to drain")
    await second.shutdown()


async def test_crash_mid_stream_has_an_exactly_once_effect(
    settings: Settings, broker: Broker, stream: pd.DataFrame
) -> None:
    """In-process crash: the worker task is cancelled mid-batch, its deliveries never acked."""
    frame = stream.head(2000)
    url = settings.storage.database_url
    await broker.publish(settings.broker.transactions_queue, transaction_bodies(frame))
    await crash_then_drain(settings, expected=2000)
    ids = stored_ids(url)
    assert len(ids) == len(set(ids)) == 2000
    published = [json.loads(m.body) for m in await broker.drain(broker.decisions)]
    assert_each_id_decided_once(published, frame.transaction_id)


@pytest.mark.slow
async def test_sigkill_mid_stream_has_an_exactly_once_effect(
    settings: Settings, broker: Broker, stream: pd.DataFrame, tmp_path: Path
) -> None:
    frame = stream.head(4000)
    assert len(frame) == 4000
    (tmp_path / "none.yaml").write_text("{}\n")
    url = settings.storage.database_url
    await broker.publish(settings.broker.transactions_queue, transaction_bodies(frame))
    first = worker_process(settings, tmp_path / "worker.log")
    try:
        await wait_until(lambda: len(stored_ids(url)) >= 800, 40, "the first worker to start")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert len(stored_ids(url)) < 4000, "the kill must land mid-stream"
    second = worker_process(settings, tmp_path / "worker.log")
    try:
        await wait_until(lambda: len(stored_ids(url)) == 4000, 40, "the backlog to drain")
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0, (tmp_path / "worker.log").read_text()[-3000:]
    ids = stored_ids(url)
    assert len(ids) == len(set(ids)) == 4000
    published = [json.loads(m.body) for m in await broker.drain(broker.decisions)]
    assert_each_id_decided_once(published, frame.transaction_id)


def decision_bodies(
    messages: list[aio_pika.abc.AbstractIncomingMessage],
) -> list[dict[str, object]]:
    """Every decision published, whether alone or inside a DecisionBatch."""
    bodies = []
    for message in messages:
        body = json.loads(message.body)
        batched = message.type == DECISION_BATCH_TYPE
        bodies.extend(body["decisions"] if batched else [body])
    return bodies


async def test_batch_envelopes_with_poison_items_and_a_crash_have_an_exactly_once_effect(
    settings: Settings, broker: Broker, stream: pd.DataFrame
) -> None:
    """Batches in, batches out; a bad item goes to the DLQ alone; a crash doubles nothing."""
    frame = stream.head(2000)
    rows = transaction_messages(frame)
    envelopes = [
        json.loads(TransactionBatch(transactions=rows[i : i + 50]).to_bytes())
        for i in range(0, len(rows), 50)
    ]
    poison_item = {**envelopes[3]["transactions"][7], "tx_amount": -1, "transaction_id": 10**9}
    envelopes[3]["transactions"].insert(7, poison_item)
    broken = b'{"schema_version": 1, "transactions": "none"}'
    bodies = [json.dumps(e).encode() for e in envelopes]
    bodies.insert(5, broken)
    url = settings.storage.database_url
    await broker.publish(settings.broker.transactions_queue, bodies, TRANSACTION_BATCH_TYPE)
    await crash_then_drain(settings, expected=2000)

    ids = stored_ids(url)
    assert len(ids) == len(set(ids)) == 2000
    decisions = await broker.drain(broker.decisions)
    assert {m.type for m in decisions} == {DECISION_BATCH_TYPE}
    assert_each_id_decided_once(decision_bodies(decisions), frame.transaction_id)
    dead = await broker.drain(
        await broker.channel.get_queue(dead_letter_queue(settings.broker.transactions_queue))
    )
    # Dead letters are at least once: a crash before the ack may repeat one, never lose one.
    assert {m.body for m in dead} == {broken, orjson.dumps(poison_item)}
    for message in dead:
        reason = message.headers[REASON_HEADER]
        if message.body == broken:
            assert reason.startswith("invalid message: transactions")
        else:
            assert (message.headers[BATCH_ITEM_HEADER], "tx_amount" in reason) == (7, True)


async def test_repeated_ids_get_the_stored_decision_and_conflicts_are_dead_lettered(
    settings: Settings, broker: Broker, stream: pd.DataFrame
) -> None:
    """Singles, then an envelope repeating ids (within itself, stored ones, one changed)."""
    frame = stream.head(250)
    rows = transaction_messages(frame)
    changed = rows[11].model_copy(update={"tx_amount": rows[11].tx_amount + 1.0})
    repeats = [*rows[200:], rows[200], rows[10], changed]
    queue = settings.broker.transactions_queue
    worker = await start_worker(settings)
    try:
        await broker.publish(queue, [r.to_bytes() for r in rows[:200]] + [rows[12].to_bytes()])
        envelope = TransactionBatch(transactions=repeats).to_bytes()
        await broker.publish(queue, [envelope], TRANSACTION_BATCH_TYPE)
        dlq = await broker.channel.get_queue(dead_letter_queue(queue))
        dead: list[aio_pika.abc.AbstractIncomingMessage] = []

        async def drained() -> bool:
            dead.extend(await broker.drain(dlq))
            return len(stored_ids(settings.storage.database_url)) == 250 and len(dead) == 1

        deadline = time.monotonic() + 30
        while not await drained():
            assert time.monotonic() < deadline, "timed out waiting for the repeats"
            await asyncio.sleep(0.1)
    finally:
        await worker.shutdown()
    ids = stored_ids(settings.storage.database_url)
    assert len(ids) == len(set(ids)) == 250
    published = decision_bodies(await broker.drain(broker.decisions))
    assert_each_id_decided_once(published, frame.transaction_id)
    counts = pd.Series([b["transaction_id"] for b in published]).value_counts()
    assert all(counts[rows[i].transaction_id] == 2 for i in (200, 10, 12))
    assert counts[rows[11].transaction_id] == 1  # the conflict published nothing
    (letter,) = dead
    assert letter.headers[BATCH_ITEM_HEADER] == len(repeats) - 1
    assert "already stored with a different tx_amount" in letter.headers[REASON_HEADER]
    engine = create_db_engine(settings.storage.database_url)
    try:
        with engine.connect() as connection:
            amount = connection.execute(
                select(transactions.c.tx_amount).where(
                    transactions.c.transaction_id == rows[11].transaction_id
                )
            ).scalar_one()
    finally:
        engine.dispose()
    assert amount == rows[11].tx_amount  # the first payload stands


REDIS_START = [
    "redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379",
    "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis",
    "--logfile", "/var/log/redis/ci.log",
]  # fmt: skip


def _postgres_cluster(action: str) -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action],
        check=True,
        capture_output=True,
    )


def _restart_redis() -> None:
    subprocess.run(["redis-cli", "-p", "6379", "shutdown", "nosave"], capture_output=True)
    subprocess.run(REDIS_START, check=True, capture_output=True)


def _require_service_control(*commands: str) -> None:
    missing = [c for c in commands if subprocess.run(["which", c], capture_output=True).returncode]
    if missing or os.geteuid() != 0:
        message = f"stopping real services needs root and {commands} (missing: {missing})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


async def _publish_in_waves(broker: Broker, queue: str, frame: pd.DataFrame) -> None:
    """Publish during the outage too: the producer keeps sending while a service is down."""
    for wave in np.array_split(frame, 5):
        await broker.publish(queue, transaction_bodies(wave))
        await asyncio.sleep(0.3)


@pytest.mark.slow
async def test_postgresql_stopped_mid_stream_loses_nothing(
    settings: Settings, broker: Broker, stream: pd.DataFrame
) -> None:
    _require_service_control("pg_ctlcluster")
    frame = stream.head(2000)
    worker = await start_worker(settings)
    url = settings.storage.database_url
    queue = settings.broker.transactions_queue
    try:
        await broker.publish(queue, transaction_bodies(frame.head(300)))
        await wait_until(lambda: len(stored_ids(url)) >= 100, 30, "first rows")
        await asyncio.to_thread(_postgres_cluster, "stop")
        try:
            await _publish_in_waves(broker, queue, frame.iloc[300:])
            await asyncio.sleep(2.0)  # the worker retries with backoff meanwhile
        finally:
            await asyncio.to_thread(_postgres_cluster, "start")
        await wait_until(lambda: len(stored_ids(url)) == len(frame), 90, "the backlog to drain")
    finally:
        await worker.shutdown()
    assert sorted(stored_ids(url)) == sorted(frame.transaction_id)


@pytest.mark.slow
async def test_redis_restarted_mid_stream_loses_nothing(
    settings: Settings, broker: Broker, stream: pd.DataFrame
) -> None:
    _require_service_control("redis-server", "redis-cli")
    frame = stream.head(2000)
    worker = await start_worker(settings)
    url = settings.storage.database_url
    queue = settings.broker.transactions_queue
    try:
        await broker.publish(queue, transaction_bodies(frame.head(300)))
        await wait_until(lambda: len(stored_ids(url)) >= 100, 30, "first rows")
        # A restart of a Redis that keeps nothing on disk: connections drop, scripts are gone.
        await asyncio.to_thread(_restart_redis)
        await _publish_in_waves(broker, queue, frame.iloc[300:])
        await wait_until(lambda: len(stored_ids(url)) == len(frame), 90, "the backlog to drain")
    finally:
        await worker.shutdown()
    assert sorted(stored_ids(url)) == sorted(frame.transaction_id)


async def test_a_record_the_database_refuses_is_dead_lettered_alone(
    settings: Settings, broker: Broker, stream: pd.DataFrame
) -> None:
    url = settings.storage.database_url
    upgrade_database(url)
    engine = create_engine(url)
    with engine.begin() as connection:  # the database itself refuses two ids, whatever they say
        connection.execute(text(REFUSE_TRIGGER))
    engine.dispose()
    good = stream.head(300)
    bodies = transaction_bodies(good)
    row = good.iloc[0]
    poison = [  # valid messages: only the database (its trigger) refuses them
        TransactionMessage(
            transaction_id=10**9 + i,
            tx_datetime=row.tx_datetime,
            customer_id=int(row.customer_id),
            terminal_id=int(row.terminal_id),
            tx_amount=1.0,
        ).to_bytes()
        for i in range(2)
    ]
    worker = await start_worker(settings)
    await broker.publish(settings.broker.transactions_queue, bodies[:150] + poison + bodies[150:])
    dlq = await broker.channel.get_queue(dead_letter_queue(settings.broker.transactions_queue))
    dead: list[aio_pika.abc.AbstractIncomingMessage] = []
    deadline = time.monotonic() + 30
    while len(dead) < 2:
        assert time.monotonic() < deadline, "timed out waiting for 2 dead letters"
        dead.extend(await broker.drain(dlq))
        await asyncio.sleep(0.1)
    await wait_until(lambda: len(stored_ids(url)) >= 300, 30, "rows")
    await worker.shutdown()
    assert sorted(stored_ids(url)) == sorted(good.transaction_id)
    assert sorted(m.body for m in dead) == sorted(poison)
    assert all("could not be stored" in m.headers[REASON_HEADER] for m in dead)
    client = redis.Redis.from_url(settings.storage.state_url, decode_responses=True)
    held = client.zrange(f"vigil:features:{{c{int(row.customer_id)}}}:tx", 0, -1)
    client.close()
    assert not {str(10**9), str(10**9 + 1)} & set(held)  # the refused left no state behind


REFUSE_TRIGGER = """
CREATE FUNCTION refuse_test_ids() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.transaction_id >= 1000000000 THEN RAISE EXCEPTION 'refused (test)'; END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER refuse_test_ids BEFORE INSERT ON transactions
  FOR EACH ROW EXECUTE FUNCTION refuse_test_ids();
"""
