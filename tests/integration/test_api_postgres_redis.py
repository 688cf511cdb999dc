"""The API on real PostgreSQL and Redis: every 2xx answer is a stored row, features are online."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from api_support import api_settings, expected_score, transaction, write_model
from vigil.config import Settings
from vigil.features import OnlineFeatureComputer, Transaction, feature_names, make_state_store
from vigil.serving import create_app
from vigil.storage import create_db_engine, fetch_predictions

pytestmark = pytest.mark.integration

BIAS = -5.0


@pytest.fixture
def settings(small_settings: Settings, postgres_url: str, redis_url: str) -> Settings:
    base = api_settings(small_settings)
    storage = base.storage.model_copy(update={"database_url": postgres_url, "state_url": redis_url})
    return base.model_copy(update={"storage": storage})


def test_predictions_are_stored_in_postgres_with_redis_features(
    settings: Settings, tmp_path: Path
) -> None:
    write_model(settings, settings.inference.model_path, "model-pg", BIAS)
    first = random.randrange(10**12, 10**13)  # the shared test database keeps earlier runs' rows
    customer = random.randrange(10**9)
    ids = list(range(first, first + 5))
    make_state_store(settings.storage.state_url).mark_warm()  # as `vigil warm-state` does
    with TestClient(create_app(settings)) as client:  # builds writer and Redis store itself
        health = client.get("/health").json()
        answers = [
            client.post(
                "/predict",
                json=transaction(tid, amount=100.0 + i, customer_id=customer,
                                 tx_datetime=f"2018-09-30T10:0{i}:00"),
            )
            for i, tid in enumerate(ids)
        ]  # fmt: skip
        forward = client.post(
            "/forward", json={"features": [0.0] * len(feature_names(settings.features))}
        )
    assert health == {
        "status": "ready",
        "checks": {"model": True, "database": True, "state_store": True, "state_warm": True},
        "model_version": "model-pg",
    }
    assert [a.status_code for a in answers] == [200] * len(ids)
    assert forward.status_code == 200
    engine = create_db_engine(settings.storage.database_url)
    with engine.connect() as connection:
        stored = fetch_predictions(connection, ids)
    engine.dispose()
    assert [row["transaction_id"] for row in stored] == ids
    for row, answer in zip(stored, answers, strict=True):
        body = answer.json()
        assert row["score"] == pytest.approx(body["score"])
        assert row["model_version"] == "model-pg" and row["source"] == "api"
        assert row["customer_id"] == customer
        assert body["score"] == pytest.approx(expected_score(row["tx_amount"], BIAS), abs=1e-6)


def test_redis_state_is_shared_between_two_api_replicas(settings: Settings) -> None:
    """Two apps on one Redis: each one's transactions count in the other's features."""
    write_model(settings, settings.inference.model_path, "model-pg", BIAS)
    customer = random.randrange(10**9)
    base = random.randrange(10**12, 10**13)
    with TestClient(create_app(settings)) as replica_a, TestClient(create_app(settings)) as b:
        assert replica_a.post("/predict", json=transaction(base, customer_id=customer)).is_success
        assert b.post("/predict", json=transaction(base + 1, customer_id=customer)).is_success
    store = make_state_store(settings.storage.state_url)
    computer = OnlineFeatureComputer(settings.features, store)
    third = Transaction(base + 2, datetime(2018, 9, 30, 23, 59), customer, 1, 10.0)
    vector = computer.features_for(third)
    store.close()
    # Same day: the two answered by the replicas plus this one.
    assert vector[computer.names.index("customer_id_nb_tx_1day_window")] == 3


def test_concurrent_predictions_survive_poison_neighbours(
    settings: Settings, redis_url: str
) -> None:
    write_model(settings, settings.inference.model_path, "model-pg")
    customer = random.randrange(10**9)
    first = random.randrange(10**12, 10**13)
    bodies = [
        transaction(first + i, customer_id=customer, tx_datetime=f"2018-09-30T10:{i % 60:02d}:00")
        for i in range(300)
    ]
    poison_ids = [first + 1000, first + 1001]
    extras = [{"note": "a\u0000b"}, {"big": 10**30}]  # PostgreSQL or its driver refuse them
    for tid, extra in zip(poison_ids, extras, strict=True):
        bodies.insert(100, transaction(tid, customer_id=customer, **extra))
    with TestClient(create_app(settings)) as client, ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda body: client.post("/predict", json=body), bodies))
    codes = {b["transaction_id"]: a.status_code for b, a in zip(bodies, answers, strict=True)}
    assert all(400 <= codes[tid] < 500 for tid in poison_ids)
    innocent = [b["transaction_id"] for b in bodies if b["transaction_id"] not in poison_ids]
    assert {codes[tid] for tid in innocent} == {200}
    engine = create_db_engine(settings.storage.database_url)
    with engine.connect() as connection:
        rows = fetch_predictions(connection, [b["transaction_id"] for b in bodies])
    engine.dispose()
    assert {row["transaction_id"] for row in rows} == set(innocent)
    client_ = redis.Redis.from_url(redis_url, decode_responses=True)
    held = client_.zrange(f"vigil:features:{{c{customer}}}:tx", 0, -1)
    client_.close()
    assert set(map(int, held)) == set(innocent)  # the refused left no trace in the state
