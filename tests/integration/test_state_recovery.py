"""The online state recovers by itself after a Redis crash: nothing acknowledged stays lost.

Transactions (and fraud labels) go through the one decision path into a private redis-server
and PostgreSQL. The server is SIGKILLed while its fsync stalls (so that acknowledged writes
are really lost, as in ``test_redis_failover``), or restarted without persistence (so that
everything is). Once it is back, the runtime's recovery (:mod:`vigil.decisions.recovery`)
notices the new run id and re-records from PostgreSQL, without an operator command: every
acknowledged transaction and label is held again, and the features of new transactions equal
those of a store that never crashed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import redis
import redis.cluster
from prometheus_client import CollectorRegistry

from api_support import write_model
from conftest import private_pg_schema
from redis_cluster_support import (
    POSTPONE_BOUND_S,
    aof_buffer_bytes,
    local_cluster,
    local_server,
    require_tools,
    stalled_fsync,
)
from vigil.config import Settings
from vigil.data.transaction import TransactionFields
from vigil.decisions import Runtime
from vigil.features import InMemoryStateStore, Label, OnlineFeatureComputer, Transaction
from vigil.monitoring import VigilMetrics, create_metrics
from vigil.storage import LabelRecord, upgrade_database

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

T0 = datetime(2018, 6, 2)
PREFIX = "vigil:features"  # the runtime's store
CUSTOMERS, TERMINALS = 211, 53
MARGIN_S = 1.0  # tail re-warm margin: the test's clocks are one machine's
RECOVERY_TIMEOUT_S = 60.0
RETRY_S = 20.0  # a batch retried while the store is unavailable (a failover takes ~3 s)


def transactions(start: int, size: int = 16) -> list[Transaction]:
    """Transactions of many customers and terminals, one second apart in event time."""
    return [
        Transaction(i, T0 + timedelta(seconds=i), i % CUSTOMERS, i % TERMINALS, 10.0 + i % 7)
        for i in range(start, start + size)
    ]


async def decide(runtime: Runtime, txs: list[Transaction]) -> None:
    """One micro-batch through the decision path: online state, model, PostgreSQL."""
    await runtime.pipeline.process([TransactionFields.model_validate(asdict(tx)) for tx in txs])


class Decisions:
    """Decides micro-batches through the runtime's pipeline and labels one transaction of
    each as fraud; remembers what was acknowledged, in order, for a never-crashed twin."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.acked: list[list[Transaction]] = []
        self.labelled: list[Label] = []
        self.next_id = 0

    async def step(self) -> None:
        """One batch and its label, retried while the store is unavailable (as the worker)."""
        txs = transactions(self.next_id)
        self.next_id += len(txs)
        fraud = txs[0]
        labelled_at = (fraud.tx_datetime + timedelta(days=1)).replace(tzinfo=None)
        deadline = time.monotonic() + RETRY_S
        while True:
            try:
                await decide(self.runtime, txs)
                await self.runtime.record_labels(
                    [LabelRecord(fraud.transaction_id, 1, labelled_at)]
                )
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
        self.acked.append(txs)
        self.labelled.append(
            Label(
                fraud.transaction_id, fraud.customer_id, fraud.terminal_id, fraud.tx_datetime, True
            )
        )

    async def run(self, done: Callable[[], bool]) -> None:
        """Steps until ``done``, checking the servers every 0.1 s as the running recovery
        does (nothing to re-warm meanwhile)."""
        recovery = self.runtime.recovery
        assert recovery is not None
        checked = 0.0
        while not done():
            if time.monotonic() - checked > 0.1:
                assert await recovery.check() is None
                checked = time.monotonic()
            await self.step()

    def twin(self, settings: Settings) -> OnlineFeatureComputer:
        """A store that saw the same batches and labels and never crashed."""
        online = OnlineFeatureComputer(settings.features, InMemoryStateStore())
        for txs, label in zip(self.acked, self.labelled, strict=True):
            online.features_for_batch(txs)
            online.store.add_label(label)
        return online


def lost(
    client: redis.Redis | redis.cluster.RedisCluster, decisions: Decisions
) -> tuple[list[int], list[int]]:
    """Acknowledged transactions the store does not hold (either side), and fraud labels."""
    gone = [
        tx.transaction_id
        for txs in decisions.acked
        for tx in txs
        for key in (f"{PREFIX}:{{c{tx.customer_id}}}:tx", f"{PREFIX}:{{t{tx.terminal_id}}}:tx")
        if client.zscore(key, tx.transaction_id) is None
    ]
    frauds = [
        label.transaction_id
        for label in decisions.labelled
        for key in (
            f"{PREFIX}:{{c{label.customer_id}}}:frd",
            f"{PREFIX}:{{t{label.terminal_id}}}:frd",
        )
        if client.zscore(key, label.transaction_id) is None
    ]
    return sorted(set(gone)), sorted(set(frauds))


def probes(after: int) -> list[Transaction]:
    """One new transaction per customer (and so per terminal) after everything decided."""
    return [
        Transaction(10**9 + c, T0 + timedelta(seconds=after + 60 + c), c, c % TERMINALS, 42.0)
        for c in range(CUSTOMERS)
    ]


def rewarms(metrics: VigilMetrics, kind: str) -> float:
    return metrics.state_store_rewarms.labels(kind)._value.get()


async def recovered(kind: str, *processes: tuple[Runtime, VigilMetrics]) -> float:
    """Start each runtime's recovery as the API and the worker do; wait for a re-warm (by
    any of them); the transactions re-recorded."""
    started = time.monotonic()
    for runtime, _ in processes:
        runtime.watch_state()
    while sum(rewarms(metrics, kind) for _, metrics in processes) < 1:
        assert time.monotonic() - started < RECOVERY_TIMEOUT_S, f"no {kind} re-warm"
        await asyncio.sleep(0.05)
    return sum(
        metrics.state_store_rewarmed_transactions.labels(kind)._value.get()
        for _, metrics in processes
    )


@contextmanager
def database(postgres_url: str) -> Iterator[str]:
    with private_pg_schema(postgres_url, "recovery") as url:
        upgrade_database(url)
        yield url


def warm_runtime(
    base: Settings, state_url: str, database_url: str
) -> tuple[Settings, Runtime, VigilMetrics]:
    """A worker's runtime on ``state_url`` and ``database_url``, its store marked warm (as
    `vigil warm-state` leaves it); re-warms of a changed server after :data:`MARGIN_S`."""
    storage = base.storage.model_copy(
        update={
            "database_url": database_url,
            "state_url": state_url,
            "state_check_seconds": 0.1,
            "state_rewarm_margin_seconds": MARGIN_S,
        }
    )
    settings = base.model_copy(update={"storage": storage})
    write_model(settings, settings.inference.model_path, "model-recovery")
    metrics = create_metrics(CollectorRegistry())
    runtime = Runtime.build(settings, "stream", migrate=False, metrics=metrics)
    runtime.state.mark_warm()
    return settings, runtime, metrics


def assert_features_equal(runtime: Runtime, twin: OnlineFeatureComputer, after: int) -> None:
    new = probes(after)
    np.testing.assert_allclose(
        runtime.features.features_for_batch(new), twin.features_for_batch(new), rtol=1e-6
    )


async def test_acknowledged_writes_a_crash_lost_are_re_recorded_automatically(
    tmp_path: Path, small_settings: Settings, postgres_url: str
) -> None:
    require_tools("strace")
    with database(postgres_url) as url, local_server(tmp_path / "aof", start=23500) as port:
        state_url = f"redis://127.0.0.1:{port}/0"
        settings, runtime, metrics = warm_runtime(small_settings, state_url, url)
        try:
            decisions = Decisions(runtime)
            with stalled_fsync(port) as pid:
                started = time.monotonic()

                def postponed() -> bool:  # load older than the bound, and writes postponed
                    assert time.monotonic() - started < 15.0, "no write postponed"
                    elapsed = time.monotonic() - started
                    return elapsed > POSTPONE_BOUND_S + 2.0 and aof_buffer_bytes(port) > 0

                await decisions.run(postponed)
                os.kill(pid, signal.SIGKILL)  # while the fsync still stalls
            with local_server(tmp_path / "aof", port=port), redis.Redis(port=port) as client:
                gone, _ = lost(client, decisions)
                held = sum(len(txs) for txs in decisions.acked)
                log.warning(
                    "stalled fsync: %d of %d acknowledged transactions lost", len(gone), held
                )
                assert gone, "the stalled fsync must lose acknowledged transactions"
                rewarmed = await recovered("tail", (runtime, metrics))
                assert lost(client, decisions) == ([], [])
                # a tail: what was received shortly before the old server was last seen
                assert len(gone) <= rewarmed < held
                assert rewarms(metrics, "full") == 0
                assert client.exists(f"{PREFIX}:warm")
                assert_features_equal(runtime, decisions.twin(settings), decisions.next_id)
        finally:
            await runtime.close()


async def test_a_server_that_came_back_empty_is_re_warmed_automatically_once(
    tmp_path: Path, small_settings: Settings, postgres_url: str
) -> None:
    no_persistence = ("--appendonly", "no")
    with database(postgres_url) as url:
        with local_server(tmp_path, *no_persistence, start=23500) as port:
            state_url = f"redis://127.0.0.1:{port}/0"
            settings, runtime, metrics = warm_runtime(small_settings, state_url, url)
            _, other, other_metrics = warm_runtime(small_settings, state_url, url)  # a replica
            decisions = Decisions(runtime)
            # one transaction a whole horizon older: the database covers the features' horizon
            old = replace(
                transactions(0, 1)[0],
                transaction_id=10**8,
                customer_id=10**6,
                tx_datetime=T0 - timedelta(days=40),
            )
            await decide(runtime, [old])
            await decisions.run(lambda: decisions.next_id >= 800)
        # leaving local_server SIGKILLed it; it comes back empty on the same port
        try:
            with (
                local_server(tmp_path, *no_persistence, port=port),
                redis.Redis(port=port) as client,
            ):
                gone, frauds = lost(client, decisions)
                assert len(gone) == decisions.next_id and len(frauds) == len(decisions.labelled)
                assert not client.exists(f"{PREFIX}:warm")
                await recovered("full", (runtime, metrics), (other, other_metrics))
                assert lost(client, decisions) == ([], [])
                assert client.exists(f"{PREFIX}:warm"), "the database covers the horizon"
                await asyncio.sleep(1.0)  # ten more checks of each process
                assert rewarms(metrics, "full") + rewarms(other_metrics, "full") == 1
                assert_features_equal(runtime, decisions.twin(settings), decisions.next_id)
        finally:
            await runtime.close()
            await other.close()


async def test_a_failover_to_a_replica_is_noticed_and_re_warmed(
    tmp_path: Path, small_settings: Settings, postgres_url: str
) -> None:
    with database(postgres_url) as url, local_cluster(tmp_path, start=23520) as cluster:
        settings, runtime, metrics = warm_runtime(small_settings, cluster.url, url)
        try:
            decisions = Decisions(runtime)
            started = time.monotonic()
            await decisions.run(lambda: time.monotonic() - started > 3.0)
            victim = cluster.masters()[0]
            cluster.kill(victim)
            cluster.wait(lambda: victim not in cluster.masters(), "the replica promoted")
            cluster.wait(cluster.healthy, "a healthy cluster after the failover")
            for _ in range(5):  # retried until the client finds the promoted replica
                await decisions.step()
            rewarmed = await recovered("tail", (runtime, metrics))
            held = sum(len(txs) for txs in decisions.acked)
            log.warning("failover: %d acknowledged transactions", held)
            assert 0 < rewarmed < held
            client = redis.cluster.RedisCluster(host="127.0.0.1", port=cluster.masters()[0])
            try:
                assert lost(client, decisions) == ([], [])
            finally:
                client.close()
            assert_features_equal(runtime, decisions.twin(settings), decisions.next_id)
        finally:
            await runtime.close()
