"""Property-based contract: schemathesis drives every route from the OpenAPI schema; no 5xx.

The scoring and operations routes are driven from inside one test, not ``schema.parametrize``:
schemathesis' fixture-based parametrization does not run under pytest 9.
"""

from __future__ import annotations

from pathlib import Path

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api_support import FakeWriter, api_settings, build_app, transaction, write_model
from vigil.config import Settings

ROUTES = {
    "POST /predict", "POST /forward", "POST /forward_batch", "POST /evaluate", "GET /health",
    "GET /metadata", "GET /metrics", "POST /admin/reload", "POST /admin/challenger",
}  # fmt: skip
# Schema-valid is not always acceptable: a CSV upload is documented as "a string", and only
# some strings are CSV files of transactions. Every other check (5xx, status codes, response
# schemas, content types, negative data rejected) runs.
EXCLUDED = [positive_data_acceptance]


def test_no_route_answers_a_server_error(small_settings: Settings, tmp_path: Path) -> None:
    settings = api_settings(small_settings, max_batch_rows=20)
    writer = FakeWriter()
    app = build_app(settings, write_model(settings, tmp_path / "a.onnx", "model-a"), writer)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = {
        f"{r.ok().method.upper()} {r.ok().path}": r.ok() for r in schema.get_all_operations()
    }
    assert set(operations) >= ROUTES
    for name in sorted(ROUTES):  # the lifecycle routes have their own tests
        operation = operations[name]

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=10, deadline=None, suppress_health_check=list(HealthCheck)
        )
        def conforms(case: schemathesis.Case) -> None:
            case.call_and_validate(excluded_checks=EXCLUDED)

        conforms()


def test_replayed_id_with_another_time_is_not_a_server_error(
    small_settings: Settings, tmp_path: Path
) -> None:
    settings = api_settings(small_settings)
    app = build_app(settings, write_model(settings, tmp_path / "a.onnx", "m"), FakeWriter())
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/predict", json=transaction(0)).status_code == 200
        replay = transaction(0, tx_datetime="2017-01-01T00:00:00")
        assert client.post("/predict", json=replay).status_code < 500
