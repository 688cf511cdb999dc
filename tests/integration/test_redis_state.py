"""The Redis state store against a real Redis: parity with offline, idempotency, TTLs, async."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api_support import FakeWriter, api_settings, build_app, write_model
from feature_support import (
    VERDICTS,
    assert_parity,
    edge_heavy_stream,
    offline_with_verdicts,
    verdict_log,
)
from live_scoring import assert_matches_offline, offline_from, score_from
from vigil.cli import app
from vigil.config import FeaturesConfig, Settings
from vigil.data.simulate import simulate_transactions
from vigil.features import definitions as fd
from vigil.features.online import OnlineFeatureComputer
from vigil.features.redis_state import RedisStateStore
from vigil.features.replay import replay
from vigil.features.state import InMemoryStateStore, Transaction, make_state_store
from vigil.features.verdicts import Verdict
from vigil.features.warmup import warm_state

pytestmark = pytest.mark.integration

CONFIG = FeaturesConfig()
T0 = datetime(2018, 4, 2, 12, 0, 0)


def stream(n: int) -> list[Transaction]:
    return [
        Transaction(i, T0 + timedelta(hours=7 * i), i % 4, i % 3, 5.0 + i % 11) for i in range(n)
    ]


@pytest.mark.parametrize(
    "config",
    [CONFIG, FeaturesConfig(extra=["terminal_fraud_run"]), FeaturesConfig(extra=[])],
    ids=["default", "fraud-run-only", "no-extra"],
)
def test_replay_through_redis_matches_offline(
    redis_url: str, small_settings: Settings, config: FeaturesConfig
) -> None:
    data = small_settings.data.model_copy(update={"n_customers": 40, "n_terminals": 40})
    frame = simulate_transactions(data.model_copy(update={"n_days": 40}))
    store = make_state_store(redis_url, prefix="vigil:test:parity")
    try:
        store_client = redis.Redis.from_url(redis_url)
        for key in store_client.scan_iter("vigil:test:parity:*"):
            store_client.delete(key)  # the parametrised runs share the prefix
        store_client.close()
        online = replay(OnlineFeatureComputer(config, store, dtype=np.float64), frame)
    finally:
        store.close()
    assert_matches_offline(online, frame, config)


def test_redis_equals_in_memory_with_redelivery_and_duplicate_labels(redis_url: str) -> None:
    txs = stream(200)
    results = []
    for store in (InMemoryStateStore(), RedisStateStore(redis_url, prefix="vigil:test:dup")):
        online = OnlineFeatureComputer(CONFIG, store, dtype=np.float64)
        rows = []
        for tx in txs:
            rows.append(online.features_for(tx))
            online.features_for(tx)  # redelivered: must not double-count
            for _ in range(2):  # the same label twice
                online.add_label(
                    tx.transaction_id,
                    tx.customer_id,
                    tx.terminal_id,
                    tx.tx_datetime,
                    tx.transaction_id % 5 == 0,
                )
        results.append(np.vstack(rows))
        store.close()
    np.testing.assert_array_equal(results[1], results[0])
    assert results[0][:, fd.feature_names(CONFIG).index(fd.terminal_risk(30))].max() > 0


def test_keys_are_namespaced_trimmed_and_expire(redis_url: str) -> None:
    store = RedisStateStore(redis_url, prefix="vigil:test:ttl")
    online = OnlineFeatureComputer(CONFIG, store)
    online.features_for_batch(stream(300))  # 300 * 7 h = 87 days > 30 + 7 days horizon
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = client.keys("*")
    assert keys and all(k.startswith("vigil:test:ttl:") for k in keys)
    horizon_ms = (37 + 1) * 86_400_000
    assert all(0 < client.pttl(k) <= horizon_ms for k in keys)
    oldest = min(
        int(score) for _, score in client.zrange("vigil:test:ttl:{c0}:tx", 0, 0, withscores=True)
    )
    newest = max(
        int(score) for _, score in client.zrange("vigil:test:ttl:{c0}:tx", -1, -1, withscores=True)
    )
    # trimmed relative to the previous event (one event alone never moves the line): the
    # history spans at most the horizon plus one gap between the card's events (4 x 7 h)
    assert newest - oldest < 37 * 86_400_000_000 + 28 * 3_600_000_000
    # one fixed-size record per remembered transaction: the rows string is trimmed in step
    row_bytes = 36
    rows = client.strlen("vigil:test:ttl:{c0}:rows")
    assert rows == row_bytes * client.zcard("vigil:test:ttl:{c0}:tx")
    client.close()
    store.close()


async def test_async_variants_share_state_with_sync(redis_url: str) -> None:
    txs = stream(60)
    store = RedisStateStore(redis_url, prefix="vigil:test:async")
    online = OnlineFeatureComputer(CONFIG, store, dtype=np.float64)
    for tx in txs[:40]:
        await online.arecord_batch([tx])
        await online.aadd_label(
            tx.transaction_id, tx.customer_id, tx.terminal_id, tx.tx_datetime, True
        )
    got = (await online.arecord_batch(txs[40:])).features
    reference = OnlineFeatureComputer(CONFIG, InMemoryStateStore(), dtype=np.float64)
    for tx in txs[:40]:
        reference.features_for(tx)
        reference.add_label(tx.transaction_id, tx.customer_id, tx.terminal_id, tx.tx_datetime, True)
    np.testing.assert_array_equal(got, reference.features_for_batch(txs[40:]))
    await store.aclose()
    store.close()


async def test_ping_answers_when_up_and_raises_when_unreachable(redis_url: str) -> None:
    store, down = RedisStateStore(redis_url), RedisStateStore("redis://127.0.0.1:1/0")
    assert store.ping() is True and await store.aping() is True
    with pytest.raises(redis.ConnectionError):
        await down.aping()
    assert InMemoryStateStore().ping() is True
    await store.aclose()
    await down.aclose()


def test_redis_equals_in_memory_out_of_order_ties_and_huge_ids(redis_url: str) -> None:
    """Late arrivals go into place in the rows string; same-instant ties order by numeric id."""
    rng = np.random.default_rng(7)
    big = 2**62  # ids past 2**53 must still order exactly
    txs = [
        Transaction(
            big + int(i) * 997 if i % 3 == 0 else int(i),
            T0 + timedelta(hours=int(h)),  # few distinct hours: many same-instant ties
            int(i % 3),
            int(i % 2),
            round(float(rng.uniform(1, 200)), 2),
        )
        for i, h in enumerate(rng.integers(0, 24 * 45, size=240) // 5 * 5)
    ]
    order = rng.permutation(len(txs))  # arrival order differs from event time order
    results = []
    for store in (InMemoryStateStore(), RedisStateStore(redis_url, prefix="vigil:test:order")):
        online = OnlineFeatureComputer(CONFIG, store, dtype=np.float64)
        rows = []
        for start in range(0, len(order), 16):  # micro-batches, as the API sends them
            batch = [txs[i] for i in order[start : start + 16]]
            rows.append(online.features_for_batch(batch))
            for tx in batch:
                online.add_label(
                    tx.transaction_id,
                    tx.customer_id,
                    tx.terminal_id,
                    tx.tx_datetime,
                    tx.tx_amount > 150,
                )
        results.append(np.vstack(rows))
        store.close()
    np.testing.assert_array_equal(results[1], results[0])


def test_warm_state_command_fills_redis_like_a_live_store(
    redis_url: str, tmp_path: Path, small_settings: Settings
) -> None:
    """`vigil warm-state` into real Redis: the next transactions score as offline does."""
    data = small_settings.data.model_copy(update={"n_customers": 40, "n_terminals": 40})
    frame = simulate_transactions(data.model_copy(update={"n_days": 45}))
    until = datetime(2018, 5, 10)
    frame[frame.tx_datetime < until].to_parquet(tmp_path / "history.parquet", index=False)
    result = CliRunner().invoke(
        app,
        [
            "warm-state", "--input", str(tmp_path / "history.parquet"),
            "--until", until.isoformat(), "--set", f"storage.state_url={redis_url}",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "state store warmed:" in result.output

    store = make_state_store(redis_url)  # the command's default prefix
    got = score_from(store, frame, until, CONFIG)
    store.close()
    expected = offline_from(frame, until, CONFIG)
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    assert expected[:, fd.feature_names(CONFIG).index(fd.terminal_risk(30))].max() > 0


def test_health_is_degraded_after_the_state_store_lost_its_history(
    redis_url: str, small_settings: Settings, tmp_path: Path
) -> None:
    """A Redis restart without persistence loses the marker with the data: 'degraded' and
    vigil_state_store_warm 0 until `vigil warm-state` has run."""
    prefix = f"vigil:test:warm:{uuid.uuid4().hex[:8]}"
    store = RedisStateStore(redis_url, prefix=prefix)
    settings = api_settings(small_settings)
    model = write_model(settings, tmp_path / "m.onnx", "model-w")
    client_ = redis.Redis.from_url(redis_url)
    with TestClient(build_app(settings, model, FakeWriter(), store)) as client:
        cold = client.get("/health")
        assert cold.status_code == 200 and cold.json()["status"] == "degraded"
        assert cold.json()["checks"]["state_warm"] is False
        assert "vigil_state_store_warm 0.0" in client.get("/metrics").text
        frame = simulate_transactions(small_settings.data.model_copy(update={"n_days": 40}))
        warm_state(OnlineFeatureComputer(small_settings.features, store), frame)
        warm = client.get("/health").json()
        assert warm["status"] == "ready" and warm["checks"]["state_warm"] is True
        assert "vigil_state_store_warm 1.0" in client.get("/metrics").text
        client_.delete(*client_.keys(f"{prefix}:*"))  # what a restart without AOF leaves
        assert client.get("/health").json()["status"] == "degraded"
    client_.close()


def test_verdict_features_through_redis_match_offline(redis_url: str) -> None:
    frame = edge_heavy_stream(n=1200)
    log = verdict_log(frame)
    store = RedisStateStore(redis_url, prefix="vigil:test:verdicts")
    try:
        online = replay(OnlineFeatureComputer(VERDICTS, store, dtype=np.float64), frame, log)
    finally:
        store.close()
    assert_parity(VERDICTS, offline_with_verdicts(VERDICTS, frame, log), online)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    verdict_keys = client.keys("vigil:test:verdicts:*:vr*")
    horizon_ms = (10 + 7 + 1) * 86_400_000  # verdict window + delay + a day of slack
    assert verdict_keys and all(0 < client.pttl(k) <= horizon_ms for k in verdict_keys)
    client.close()


async def test_async_verdicts_equal_in_memory(redis_url: str) -> None:
    txs = stream(80)
    verdicts = [
        Verdict(
            tx.transaction_id,
            tx.customer_id,
            tx.terminal_id,
            tx.tx_datetime,
            i % 3 == 0,
            i % 2 == 0,
            tx.tx_datetime + timedelta(hours=1),
        )
        for i, tx in enumerate(txs[:60])
    ]
    store = RedisStateStore(redis_url, prefix="vigil:test:averdicts")
    online = OnlineFeatureComputer(VERDICTS, store, dtype=np.float64)
    reference = OnlineFeatureComputer(VERDICTS, InMemoryStateStore(), dtype=np.float64)
    await online.aadd_verdicts(verdicts)
    reference.add_verdicts(verdicts)
    got = (await online.arecord_batch(txs)).features
    np.testing.assert_array_equal(got, reference.features_for_batch(txs))
    assert got[:, -8:].max() > 0
    await store.aclose()
    store.close()


def _state(client: redis.Redis, prefix: str) -> dict[str, object]:
    """Every key under ``prefix`` (without it) and its content; whether it has a TTL."""
    out: dict[str, object] = {}
    for key in client.scan_iter(f"{prefix}:*"):
        name = key.decode()[len(prefix) :]
        kind = client.type(key).decode()
        value = client.get(key) if kind == "string" else client.zrange(key, 0, -1, withscores=True)
        out[name] = (value, client.pttl(key) > 0)
    return out


def _rows_per_load_call(store: RedisStateStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Spy on ``store``'s load script calls: the transactions each carries, in call order."""
    from vigil.features.redis_state import _LOAD, _ROW

    rows: list[int] = []
    execute = store._client.execute_command

    def counted(*call: Any) -> Any:
        if call[:2] == ("EVALSHA", _LOAD.sha):
            blobs = call[3 + call[2] + 2 :]  # after the keys: ttl, n customers, then 3 per op
            rows.append(sum(len(blob) for blob in blobs[0::3]) // _ROW.itemsize)
        return execute(*call)

    monkeypatch.setattr(store._client, "execute_command", counted)
    return rows


@pytest.mark.parametrize("rows_per_call", [None, 7], ids=["default", "7-rows"])
def test_bulk_load_leaves_the_state_recording_does_merged_with_live_records(
    redis_url: str,
    small_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    rows_per_call: int | None,
) -> None:
    """`vigil warm-state`'s bulk load after a Redis restart: the live traffic recorded since
    (newer) is already there; the result equals recording the history then the labels. No
    load call carries more than its bound of rows, however many an entity has (a terminal's
    whole history in one script call held Redis for half a second): an entity's history
    split across calls (7 rows each) merges to the same state."""
    from vigil.features import redis_state
    from vigil.features.replay import as_transactions, in_event_order
    from vigil.features.state import Label, WindowSpec

    if rows_per_call is not None:
        monkeypatch.setattr(redis_state, "_LOAD_ROWS_PER_CALL", rows_per_call)
    bound = redis_state._LOAD_ROWS_PER_CALL

    update = {"n_customers": 60, "n_terminals": 60, "n_days": 45, "seed": 5}
    frame = in_event_order(simulate_transactions(small_settings.data.model_copy(update=update)))
    cut = frame.tx_datetime.iloc[int(len(frame) * 0.8)]
    history, live = frame[frame.tx_datetime < cut], frame[frame.tx_datetime >= cut]
    txs = as_transactions(history)
    labels = [
        Label(int(r.transaction_id), int(r.customer_id), int(r.terminal_id),
              r.tx_datetime.to_pydatetime(), bool(r.tx_fraud))
        for r in history.itertuples()
    ]  # fmt: skip
    labels += labels[:50]  # a repeated label changes nothing
    assert any(label.fraud for label in labels)
    spec = WindowSpec.from_config(CONFIG)
    client = redis.Redis.from_url(redis_url)
    states = []
    for name in ("recorded", "loaded"):
        prefix = f"vigil:test:load:{name}:{uuid.uuid4().hex[:6]}"
        store = RedisStateStore(redis_url, prefix=prefix)
        store.record(as_transactions(live), spec)  # the API since the restart
        if name == "recorded":
            for start in range(0, len(txs), 97):
                store.record(txs[start : start + 97], spec)
            for label in labels:
                store.add_label(label)
        else:
            rows = _rows_per_load_call(store, monkeypatch)
            store.load(txs, labels, spec)
        states.append(_state(client, prefix))
        store.close()
    client.close()
    assert states[0].keys() == states[1].keys() and len(states[0]) > 50
    assert states[1] == states[0]
    assert sum(rows) == 2 * len(txs) and max(rows) <= bound  # each tx: customer and terminal
