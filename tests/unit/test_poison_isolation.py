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
