"""The state store on a real local Redis Cluster (3 masters, 3 replicas): same features, exactly.

Every script call must touch one slot (the cluster refuses CROSSSLOT calls), so these tests
passing means the record, label and forget operations are split per entity.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import numpy as np
import pytest
import redis
import redis.cluster

from feature_support import (
    VERDICTS,
    assert_parity,
    edge_heavy_stream,
    offline_with_verdicts,
    verdict_log,
)
from live_scoring import assert_matches_offline
from redis_cluster_support import LocalCluster, local_cluster
from vigil.config import FeaturesConfig, Settings
from vigil.data.simulate import simulate_transactions
from vigil.features import definitions as fd
from vigil.features.online import OnlineFeatureComputer
from vigil.features.redis_state import RedisStateStore
from vigil.features.replay import replay
from vigil.features.state import InMemoryStateStore, Transaction, make_state_store

pytestmark = pytest.mark.integration

CONFIG = FeaturesConfig()
T0 = datetime(2018, 4, 2, 12, 0, 0)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with local_cluster(tmp_path_factory.mktemp("redis-cluster")) as running:
        yield running


def test_replay_through_redis_cluster_matches_offline(
    cluster: LocalCluster, small_settings: Settings
) -> None:
    """The handbook features of a simulated world: online on the cluster == offline SQL."""
    data = small_settings.data.model_copy(update={"n_customers": 60, "n_terminals": 60})
    frame = simulate_transactions(data.model_copy(update={"n_days": 40}))
    store = make_state_store(cluster.url, prefix="vigil:test:cluster-parity")
    assert isinstance(store, RedisStateStore) and store.cluster
    try:
        online = replay(OnlineFeatureComputer(CONFIG, store, dtype=np.float64), frame)
    finally:
        store.close()
    assert_matches_offline(online, frame, CONFIG)
    # the entities' keys spread over all three masters
    client = redis.cluster.RedisCluster(host="127.0.0.1", port=cluster.ports[0])
    sizes = [client.dbsize(target_nodes=node) for node in client.get_primaries()]
    client.close()
    assert len(sizes) == 3 and min(sizes) > 0.2 * sum(sizes), sizes


def _mixed_stream() -> list[Transaction]:
    """Out of time order, same-instant ties, ids past 2**53, entities sharing tags' digits."""
    rng = np.random.default_rng(11)
    big = 2**62
    txs = [
        Transaction(
            big + int(i) * 997 if i % 3 == 0 else int(i),
            T0 + timedelta(hours=int(h)),
            int(i % 7),
            int(i % 5),
            round(float(rng.uniform(1, 200)), 2),
        )
        for i, h in enumerate(rng.integers(0, 24 * 45, size=300) // 5 * 5)
    ]
    return [txs[i] for i in rng.permutation(len(txs))]


async def test_cluster_equals_single_redis_and_memory(
    cluster: LocalCluster, redis_url: str
) -> None:
    """Micro-batches (sync and async), repeats, relabels and forgets: three stores agree."""
    txs = _mixed_stream()
    stores = [
        InMemoryStateStore(),
        RedisStateStore(redis_url, prefix="vigil:test:single"),
        RedisStateStore(cluster.url, prefix="vigil:test:mixed"),
    ]
    results = []
    for store in stores:
        online = OnlineFeatureComputer(CONFIG, store, dtype=np.float64)
        rows = []
        for start in range(0, len(txs), 16):
            batch = txs[start : start + 16]
            if start % 32:
                recorded = await online.arecord_batch(batch + batch[:2])  # two repeats
                assert recorded.recorded == batch
                rows.append(recorded.features[: len(batch)])
            else:
                rows.append(online.features_for_batch(batch))
            for tx in batch:
                fraud = tx.tx_amount > 120
                online.add_label(
                    tx.transaction_id, tx.customer_id, tx.terminal_id, tx.tx_datetime, fraud
                )
                if tx.tx_amount > 180:  # relabelled genuine
                    await online.aadd_label(
                        tx.transaction_id, tx.customer_id, tx.terminal_id, tx.tx_datetime, False
                    )
            await online.aforget(batch[-1:])  # its storage "failed"
            rows.append(online.features_for_batch(batch[-1:]))  # recorded again
        results.append(np.vstack(rows))
        store.close()
        await store.aclose()
    np.testing.assert_array_equal(results[1], results[0])
    np.testing.assert_array_equal(results[2], results[0])
    assert results[0][:, fd.feature_names(CONFIG).index(fd.terminal_risk(30))].max() > 0


def test_cluster_store_loads_its_scripts_on_a_node_that_lacks_them(cluster: LocalCluster) -> None:
    """SCRIPT FLUSH (as after a restart or promotion): the next call loads and succeeds."""
    store = RedisStateStore(cluster.url, prefix="vigil:test:noscript")
    online = OnlineFeatureComputer(CONFIG, store, dtype=np.float64)
    txs = [Transaction(i, T0 + timedelta(hours=i), i % 9, i % 4, 10.0 + i) for i in range(40)]
    first = online.features_for_batch(txs[:20])
    for port in cluster.ports:
        redis.Redis(port=port).script_flush()
    second = online.features_for_batch(txs[20:])
    reference = OnlineFeatureComputer(CONFIG, InMemoryStateStore(), dtype=np.float64)
    np.testing.assert_array_equal(np.vstack([first, second]), reference.features_for_batch(txs))
    store.close()


async def test_cluster_store_is_made_without_a_cluster_and_raises_on_use() -> None:
    """Made while the cluster is down (an API starting first), it fails only when used."""
    store = make_state_store("redis+cluster://127.0.0.1:1", prefix="vigil:test:down")
    assert isinstance(store, RedisStateStore) and store.cluster
    with pytest.raises(redis.RedisError):
        await store.aping()
    with pytest.raises(redis.RedisError):
        store.ping()
    store.close()  # closing connects to nothing
    await store.aclose()
    assert not RedisStateStore("redis://127.0.0.1:1/0").cluster


def test_verdict_features_on_the_cluster_match_offline(cluster: LocalCluster) -> None:
    """Verdict operations are split per entity too: the cluster would refuse CROSSSLOT calls."""
    frame = edge_heavy_stream(n=800)
    log = verdict_log(frame)
    store = make_state_store(cluster.url, prefix="vigil:test:cluster-verdicts")
    try:
        online = replay(OnlineFeatureComputer(VERDICTS, store, dtype=np.float64), frame, log)
    finally:
        store.close()
    assert_parity(VERDICTS, offline_with_verdicts(VERDICTS, frame, log), online)
