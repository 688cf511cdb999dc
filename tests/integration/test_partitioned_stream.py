"""Partitioned streaming against real RabbitMQ, PostgreSQL and Redis: N workers, each card in order.

Transactions go to 8 partition queues by customer; 1, 2 or 4 workers share them, the extra
workers joining mid-stream (a rebalance under load) and, with 4, one of them leaving again.
Every transaction gets exactly one decision, each customer's decisions come out in event
order, and the scores are the model applied to the offline features.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import numpy as np
import pandas as pd
import pytest
from prometheus_client import Counter
from test_stream_worker import (
    decision_bodies,
    start_worker,
    stored_ids,
    stream_settings,
    wait_until,
)

from broker_support import decision_capture
from conftest import private_pg_schema
from vigil.config import DataConfig, Settings
from vigil.data import schema
from vigil.data.simulate import simulate_transactions
from vigil.features.offline import compute_features_frame
from vigil.inference.scorer import OnnxScorer
from vigil.monitoring import create_metrics
from vigil.streaming import BrokerSink, replay
from vigil.streaming.partitions import assigned, partition_of, partition_queue

pytestmark = pytest.mark.integration

PARTITIONS = 8


@pytest.fixture(scope="module")
def cards() -> pd.DataFrame:
    """Few customers, many transactions each (6 days: shorter than the label delay)."""
    frame = simulate_transactions(DataConfig(n_customers=150, n_terminals=300, n_days=6, seed=5))
    return frame.sort_values([schema.TX_DATETIME, schema.TRANSACTION_ID]).reset_index(drop=True)


@pytest.fixture
def settings(
    tmp_path: Path, postgres_url: str, amqp_url: str, redis_url: str, cards: pd.DataFrame
) -> Iterator[Settings]:
    """8 partitions, small batches (so that the stream lasts), quick heartbeats."""
    with private_pg_schema(postgres_url, "vigil_parts") as database_url:
        yield stream_settings(
            tmp_path, database_url, amqp_url, redis_url, cards,
            batch_size=16, prefetch=16, partitions=PARTITIONS, heartbeat_s=0.3,
        )  # fmt: skip


def test_partitions_spread_customers_and_workers_split_them() -> None:
    counts = np.bincount([partition_of(c, PARTITIONS) for c in range(10_000)])
    assert counts.min() > 0.8 * counts.mean()
    assert partition_of(2**63 - 1, PARTITIONS) == partition_of(2**63 - 1, PARTITIONS)
    members = ["b", "a", "c"]
    shares = [assigned(members, m, PARTITIONS) for m in members]
    assert set().union(*shares) == set(range(PARTITIONS))
    assert sum(len(s) for s in shares) == PARTITIONS and max(len(s) for s in shares) == 3


def acked(worker_metrics: Counter) -> float:
    return sum(s.value for s in worker_metrics.collect()[0].samples if s.name.endswith("_total"))


async def drain(queue: aio_pika.abc.AbstractQueue) -> list[aio_pika.abc.AbstractIncomingMessage]:
    got = []
    while (message := await queue.get(fail=False, no_ack=True)) is not None:
        got.append(message)
    return got


@pytest.mark.parametrize("workers", [1, 2, 4])
async def test_n_workers_keep_each_card_in_order_and_decide_once(
    settings: Settings, cards: pd.DataFrame, workers: int
) -> None:
    url = settings.storage.database_url
    third = len(cards) // 3
    async with (
        decision_capture(settings.broker) as (channel, capture),
        BrokerSink(settings.broker) as sink,
    ):
        await replay(cards.iloc[:third], sink, batch_size=40, label_after_s=None, progress=False)
        metrics = [create_metrics() for _ in range(workers)]
        running = [await start_worker(settings, metrics[0])]
        await wait_until(lambda: len(stored_ids(url)) >= third // 2, 30, "the first worker")
        for extra in metrics[1:]:  # joining mid-stream: the partitions rebalance under load
            running.append(await start_worker(settings, extra))
        rest = cards.iloc[third:]
        for start in range(0, len(rest), 120):
            chunk = rest.iloc[start : start + 120]
            await replay(chunk, sink, batch_size=40, label_after_s=None, progress=False)
            await asyncio.sleep(0.1)
            if workers == 4 and start == 240:  # one leaves mid-stream: its share moves on
                await running.pop().shutdown()
        await wait_until(lambda: len(stored_ids(url)) >= len(cards), 60, "every decision")

        def balanced() -> bool:  # every partition owned once, shares within one of each other
            shares = [len(w.worker.partitions.owned) for w in running if w.worker.partitions]
            every = sorted(
                p for w in running if w.worker.partitions for p in w.worker.partitions.owned
            )
            return every == list(range(PARTITIONS)) and max(shares) - min(shares) <= 1

        await wait_until(balanced, 20, "the partitions shared out evenly")
        for worker in running:
            await worker.shutdown()
        published = decision_bodies(await drain(capture))
        for index in range(PARTITIONS):  # nothing left behind in any partition
            queue = await channel.get_queue(partition_queue(settings.broker, index))
            assert queue.declaration_result.message_count == 0
            await channel.queue_delete(queue.name)

    ids = stored_ids(url)
    assert sorted(ids) == sorted(cards.transaction_id)  # 0 lost, 0 stored twice
    decided = [int(body["transaction_id"]) for body in published]
    assert sorted(decided) == sorted(cards.transaction_id)  # one decision each: 0 doubled
    # each card's transactions were decided in event order: micro-batch by micro-batch (the
    # decision time is the batch's), and in order inside a batch (the scores: see below)
    decided_at = {int(body["transaction_id"]): str(body["decided_at"]) for body in published}
    for customer, group in cards.groupby(schema.CUSTOMER_ID):
        times = [decided_at[t] for t in group.transaction_id]
        assert times == sorted(times), f"customer {customer} decided out of order"
    if workers > 1:  # every worker decided some
        assert all(acked(m.messages_acked) > 0 for m in metrics)

    offline = compute_features_frame(settings.features, cards).set_index(schema.TRANSACTION_ID)
    scorer = OnnxScorer.load(settings.inference.model_path)
    expected = scorer.score(offline[list(scorer.feature_names)].to_numpy(np.float32))
    scores = {int(body["transaction_id"]): body["score"] for body in published}
    got = np.array([scores[t] for t in offline.index])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
