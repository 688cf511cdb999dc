"""One record the database refuses fails alone: its neighbours are stored, it leaves no trace."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from fastapi.testclient import TestClient

from api_support import FakeWriter, api_settings, build_app, transaction, write_model
from vigil.config import Settings
from vigil.features import InMemoryStateStore, OnlineFeatureComputer, Transaction
from vigil.storage import (
    GroupCommitWriter,
    PredictionRecord,
    RecordRejected,
    count_rows,
    create_db_engine,
    upgrade_database,
)
from vigil.storage.isolation import write_isolating
from vigil.storage.tables import predictions, transactions


def record(transaction_id: int) -> PredictionRecord:
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
    )


async def test_write_isolating_halves_until_the_poison_stands_alone() -> None:
    written: list[list[int]] = []

    async def write(batch: list[int]) -> None:
        if 13 in batch:
            raise ValueError("poison")
        written.append(list(batch))

    outcomes = await write_isolating(write, list(range(32)), lambda i: i)
    assert [i for i, o in enumerate(outcomes) if o is not None] == [13]
    assert isinstance(outcomes[13], RecordRejected) and outcomes[13].transaction_id == 13
    assert sorted(i for batch in written for i in batch) == [i for i in range(32) if i != 13]
    assert len(written) <= 2 * 5  # about two writes per halving, log2(32) = 5 halvings


async def test_sqlite_writer_refuses_only_the_poison_record(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'vigil.db'}"
    upgrade_database(url)
    writer = GroupCommitWriter(url, max_batch=64, max_delay_ms=5)
    await writer.start()
    poison = 2**63  # beyond SQLite's INTEGER: the driver refuses it
    results = await asyncio.gather(
        *(writer.submit(record(i)) for i in range(100)),
        writer.submit(record(poison)),
        return_exceptions=True,
    )
    many = await writer.submit_many([record(200), record(poison + 1), record(201)])
    await writer.stop()
    assert results[:100] == [None] * 100
    assert isinstance(results[100], RecordRejected) and results[100].transaction_id == poison
    assert [o is None for o in many] == [True, False, True]
    engine = create_db_engine(url)
    with engine.connect() as connection:
        assert count_rows(connection, transactions) == count_rows(connection, predictions) == 102
    engine.dispose()


def test_a_refused_prediction_fails_alone_and_leaves_no_state(
    small_settings: Settings, tmp_path: Path
) -> None:
    settings = api_settings(small_settings)
    writer, store = FakeWriter(), InMemoryStateStore()
    writer.refused = {666}
    model = write_model(settings, tmp_path / "m.onnx", "model-a")
    app = build_app(settings, model, writer, store)
    bodies = [
        transaction(i, customer_id=5, tx_datetime=f"2018-09-30T10:{i:02d}:00") for i in range(40)
    ]
    bodies.insert(20, transaction(666, customer_id=5, tx_datetime="2018-09-30T10:20:30"))
    # concurrent requests: they share micro-batches
    with TestClient(app, raise_server_exceptions=False) as client, ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda body: client.post("/predict", json=body), bodies))
    codes = {body["transaction_id"]: a.status_code for body, a in zip(bodies, answers, strict=True)}
    assert codes.pop(666) == 422
    assert "666" in answers[20].json()["detail"]
    assert set(codes.values()) == {200}
    assert sorted(r.transaction_id for r in writer.records) == list(range(40))
    assert 666 not in store._customers[5].amounts and 666 not in store._terminals[7438].amounts
    assert len(store._customers[5].amounts) == 40


def test_forgetting_a_repeat_keeps_the_first_recording() -> None:
    online = OnlineFeatureComputer(Settings().features, InMemoryStateStore())
    first = Transaction(1, datetime(2018, 4, 1), 3, 4, 10.0)
    assert [t.transaction_id for t in asyncio.run(online.arecord_batch([first])).recorded] == [1]
    again = asyncio.run(online.arecord_batch([replace(first, tx_amount=99.0)]))
    assert again.recorded == []  # a repeat recorded nothing, so nothing is undone for it
