"""Every route of the OpenAPI schema, driven by schemathesis with an API key: never a 5xx, and a
refused request (4xx) changes nothing: no stored prediction, no training file, no label, no
online state. Hypothesis over the transaction contract's edges lives beside the contract.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy import func, select

from api_support import API_KEY, FakeWriter, api_settings, build_app, write_model
from storage_support import prediction_record
from vigil.config import DataConfig, Settings
from vigil.data.simulate import generate
from vigil.data.training_data import TrainingData
from vigil.features import InMemoryStateStore
from vigil.retraining.job import TrainingFailed
from vigil.retraining.runner import RetrainRunner, TrainOutcome
from vigil.serving.model_lifecycle import LifecycleServices
from vigil.storage import create_db_engine, insert_prediction_records, upgrade_database
from vigil.storage.tables import labels

EXAMPLES_PER_ROUTE = 25
# Three cards' days, one card with a day of look-back: GET /cases (the newest event's day)
# and the cards' case pages answer bodies with every field, times included.
SCORED = [
    prediction_record(
        i, tx_datetime=datetime(2018, 9, 29 + i // 4, 8 + i), customer_id=i % 3, score=i / 10
    )
    for i in range(8)
]
EXCLUDED = [positive_data_acceptance]  # a schema-valid string is not always a valid CSV


class NoTraining:
    """PUT /retrain's job: fails at once (no training inside a property test)."""

    def run(self, experiment_id: int) -> TrainOutcome:
        raise TrainingFailed(f"experiment {experiment_id}: training is off in this test")

    def cancel(self) -> None:
        """Nothing runs."""


@pytest.fixture
def world(small_settings: Settings, tmp_path: Path) -> Iterator[tuple[TestClient, Settings]]:
    settings = api_settings(small_settings, max_batch_rows=20, max_upload_bytes=20_000)
    generate(DataConfig(n_customers=20, n_terminals=40, n_days=3), settings.data.raw_dir)
    upgrade_database(settings.storage.database_url)
    engine = create_db_engine(settings.storage.database_url)
    with engine.begin() as connection:  # scored transactions: the case routes answer cases
        insert_prediction_records(connection, SCORED)
    writer, store = FakeWriter(), InMemoryStateStore()
    app = build_app(settings, write_model(settings, tmp_path / "a.onnx", "model-a"), writer, store)
    app.state.lifecycle = LifecycleServices(
        RetrainRunner(engine, NoTraining()), TrainingData(settings.data.raw_dir), engine
    )
    app.state.test_parts = (writer, store, engine)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, settings
    engine.dispose()


def _state(client: TestClient, settings: Settings) -> tuple[int, int, int, int]:
    """What a request could write: predictions, training files, labels, online entries."""
    writer, store, engine = client.app.state.test_parts  # type: ignore[attr-defined]
    with engine.connect() as connection:
        stored_labels = connection.execute(select(func.count()).select_from(labels)).scalar_one()
    files = len(list(settings.data.raw_dir.rglob("*.parquet")))
    online = sum(len(h.amounts) for h in store._customers.values())
    return len(writer.records), files, int(stored_labels), online


def test_every_route_of_the_schema_never_answers_5xx_nor_writes_when_refusing(
    world: tuple[TestClient, Settings],
) -> None:
    client, settings = world
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    routes = {f"{o.method.upper()} {o.path}" for o in operations}
    assert {"PUT /add_data", "PUT /retrain", "POST /deploy/{experiment_id}"} <= routes
    assert {"POST /predict", "GET /metrics/{experiment_id}", "POST /admin/reload"} <= routes
    assert {"GET /cases", "GET /cases/{customer_id}", "POST /cases/{customer_id}/verdict"} <= routes
    calls: list[tuple[str, int]] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=EXAMPLES_PER_ROUTE,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def conforms(case: schemathesis.Case) -> None:
            case.headers = {**(case.headers or {}), "X-API-Key": API_KEY}
            before = _state(client, settings)
            response = case.call(app=client.app)
            calls.append((f"{case.method} {case.path}", response.status_code))
            assert response.status_code < 500, (case.method, case.path, response.text[:300])
            if 400 <= response.status_code < 500:
                assert _state(client, settings) == before, (case.method, case.path)
            case.validate_response(response, excluded_checks=EXCLUDED)

        conforms()
    server_errors = [call for call in calls if call[1] >= 500]
    print(f"schemathesis: {len(calls)} calls over {len(routes)} routes, {len(server_errors)} 5xx")
    assert not server_errors
    assert len({route for route, _ in calls}) == len(routes)
