"""Operations contracts: health, metadata, metrics, admin security, request ids, safe 500s."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api_support import (
    API_KEY,
    FailingStore,
    FakeWriter,
    api_settings,
    build_app,
    transaction,
    write_model,
)
from vigil.config import Settings
from vigil.storage import create_db_engine, list_deployments


@pytest.fixture
def writer() -> FakeWriter:
    return FakeWriter()


@pytest.fixture
def settings(small_settings: Settings) -> Settings:
    return api_settings(small_settings)


@pytest.fixture
def client(settings: Settings, tmp_path: Path, writer: FakeWriter) -> Iterator[TestClient]:
    model = write_model(settings, tmp_path / "a.onnx", "model-a")
    with TestClient(build_app(settings, model, writer), raise_server_exceptions=False) as c:
        yield c


def test_health_is_ready_with_the_model_version(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"model": True, "database": True, "state_store": True, "state_warm": True},
        "model_version": "model-a",
    }


def test_health_is_503_when_the_database_writer_is_unhealthy(
    client: TestClient, writer: FakeWriter
) -> None:
    writer.healthy = False
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["checks"]["database"] is False


def test_metadata_reports_the_onnx_metadata(client: TestClient, settings: Settings) -> None:
    body = client.get("/metadata").json()
    assert body["champion"]["model_version"] == "model-a"
    assert body["champion"]["git_commit"] == "0000000"
    assert body["champion"]["threshold"] == 0.5
    assert body["champion"]["feature_names"][0] == "tx_amount"
    assert body["challenger"] is None


def test_metrics_expose_requests_decisions_and_model(client: TestClient) -> None:
    client.post("/predict", json=transaction(1, amount=300.0))
    client.post("/predict", json=transaction(2, amount=10.0))
    text = client.get("/metrics").text
    assert 'vigil_http_requests_total{route="/predict",status="200"} 2.0' in text
    assert 'vigil_decisions_total{label="fraud"} 1.0' in text
    assert 'vigil_decisions_total{label="legit"} 1.0' in text
    assert 'vigil_score_count{role="champion"} 2.0' in text
    assert (
        'vigil_model_info{model_kind="logistic",model_version="model-a",role="champion"} 1.0'
        in text
    )
    assert "vigil_writer_queue_depth 0.0" in text
    assert 'vigil_http_request_duration_seconds_count{route="/predict"} 2.0' in text
    # one state-store round trip per micro-batch; sequential requests are a batch each
    assert 'vigil_state_store_latency_seconds_count{operation="record"} 2.0' in text


def test_garbage_collections_are_timed_while_the_api_runs(
    settings: Settings, tmp_path: Path, writer: FakeWriter
) -> None:
    """The lifespan times the collections after its start-up freeze (``vigil_gc_*``), and
    stops when the app stops."""
    import gc

    app = build_app(settings, write_model(settings, tmp_path / "a.onnx", "model-a"), writer)
    with TestClient(app, raise_server_exceptions=False) as c:
        gc.collect(2)
        text = c.get("/metrics").text
        pauses = app.state.metrics.gc_pauses
        assert pauses in gc.callbacks
    assert pauses not in gc.callbacks
    counted = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith(("vigil_gc_collections_total", "vigil_gc_pause_seconds_total"))
    }
    assert counted['vigil_gc_collections_total{generation="2"}'] >= 1
    assert counted['vigil_gc_pause_seconds_total{generation="2"}'] > 0


def test_request_id_is_echoed_or_generated(client: TestClient) -> None:
    given = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    generated = client.get("/health", headers={"X-Request-ID": "bad id with spaces"})
    assert len(generated.headers["x-request-id"]) == 16


@pytest.mark.parametrize(("headers", "status"), [({}, 401), ({"X-API-Key": "wrong"}, 403)])
def test_admin_routes_need_the_api_key(
    client: TestClient, tmp_path: Path, headers: dict, status: int
) -> None:
    for route in ("/admin/reload", "/admin/challenger"):
        response = client.post(
            route, json={"model_path": str(tmp_path / "a.onnx")}, headers=headers
        )
        assert response.status_code == status


def test_reload_swaps_the_model_and_later_answers_name_it(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    new_model = write_model(settings, tmp_path / "b.onnx", "model-b", bias=-1.0)
    response = client.post(
        "/admin/reload", json={"model_path": str(new_model)}, headers={"X-API-Key": API_KEY}
    )
    assert response.status_code == 200
    assert response.json() == {"model_version": "model-b", "previous_version": "model-a"}
    assert client.post("/predict", json=transaction(3)).json()["model_version"] == "model-b"
    assert client.get("/health").json()["model_version"] == "model-b"
    assert 'model_version="model-b",role="champion"' in client.get("/metrics").text


def test_model_info_follows_whatever_changed_the_models(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    """A followed deployment changes no route: /metrics reads the models when scraped."""
    services = client.app.state.services  # type: ignore[attr-defined]
    services.models.deploy(write_model(settings, tmp_path / "f.onnx", "model-f"))
    services.models.set_challenger(write_model(settings, tmp_path / "g.onnx", "model-g"))
    text = client.get("/metrics").text
    assert 'model_version="model-f",role="champion"' in text
    assert 'model_version="model-g",role="challenger"' in text
    assert 'model_version="model-a"' not in text
    services.models.set_challenger(None)
    assert (
        'vigil_model_info{model_kind="logistic",model_version="model-g"'
        not in client.get("/metrics").text
    )


def test_reload_of_a_broken_file_is_422_and_the_old_model_keeps_serving(
    client: TestClient, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    response = client.post(
        "/admin/reload", json={"model_path": str(broken)}, headers={"X-API-Key": API_KEY}
    )
    assert response.status_code == 422
    assert "not a loadable ONNX model" in response.json()["detail"]
    assert client.post("/predict", json=transaction(4)).json()["model_version"] == "model-a"


def test_challenger_scores_in_shadow_and_is_stored(
    client: TestClient, settings: Settings, tmp_path: Path, writer: FakeWriter
) -> None:
    challenger = write_model(settings, tmp_path / "c.onnx", "model-c", bias=0.0)
    headers = {"X-API-Key": API_KEY}
    set_response = client.post(
        "/admin/challenger", json={"model_path": str(challenger)}, headers=headers
    )
    assert set_response.json() == {"model_version": "model-c", "previous_version": None}
    answer = client.post("/predict", json=transaction(5, amount=10.0)).json()
    assert answer["model_version"] == "model-a"  # the challenger never decides
    record = writer.records[-1]
    assert record.challenger_version == "model-c"
    assert record.challenger_score == pytest.approx(1 / (1 + 2.718281828**-0.5), abs=1e-4)
    assert client.get("/metadata").json()["challenger"]["model_version"] == "model-c"
    cleared = client.post("/admin/challenger", json={"model_path": None}, headers=headers)
    assert cleared.json() == {"model_version": None, "previous_version": "model-c"}
    # recorded for the other processes to follow: set, then removed
    engine = create_db_engine(settings.storage.database_url)
    with engine.connect() as connection:
        rows = [(d.alias, d.model_version, d.model_path) for d in list_deployments(connection)]
    engine.dispose()
    assert rows == [("challenger", "", ""), ("challenger", "model-c", str(challenger.resolve()))]


def test_unexpected_errors_are_a_generic_500_without_internals(
    settings: Settings, tmp_path: Path
) -> None:
    model = write_model(settings, tmp_path / "a.onnx", "model-a")
    app = build_app(settings, model, FakeWriter(), store=FailingStore())
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/predict", json=transaction(1), headers={"X-Request-ID": "r-1"})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error", "request_id": "r-1"}
    assert "passwd" not in response.text


def test_routes_answer_503_before_start_up(settings: Settings, tmp_path: Path) -> None:
    model = write_model(settings, tmp_path / "a.onnx", "model-a")
    client = TestClient(build_app(settings, model, FakeWriter()))  # no `with`: no lifespan
    assert client.get("/health").status_code == 503
    assert client.post("/predict", json=transaction(1)).status_code == 503


def test_openapi_documents_every_route_with_examples(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    expected = {
        "/predict", "/forward", "/forward_batch", "/evaluate", "/health", "/metadata",
        "/metrics", "/admin/reload", "/admin/challenger",
    }  # fmt: skip
    assert expected <= set(schema["paths"])
    text = client.get("/openapi.json").text
    assert '"examples"' in text and "2018-09-30T23:56:36" in text
    assert client.get("/docs").status_code == 200


def test_health_is_503_when_the_state_store_does_not_answer(
    settings: Settings, tmp_path: Path, writer: FakeWriter
) -> None:
    from vigil.features.redis_state import RedisStateStore

    model = write_model(settings, tmp_path / "a.onnx", "model-a")
    store = RedisStateStore("redis://127.0.0.1:1/0")  # nothing listens on port 1
    with TestClient(build_app(settings, model, writer, store)) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["checks"] == {
        "model": True,
        "database": True,
        "state_store": False,
        "state_warm": False,
    }


@pytest.mark.parametrize("route", ["/admin/reload", "/admin/challenger"])
@pytest.mark.parametrize("path", ["a" * 4096, "/" + "b" * 300 + "/model.onnx", "x\x00y"])
def test_unusable_model_paths_are_422_and_the_model_keeps_serving(
    client: TestClient, route: str, path: str
) -> None:
    response = client.post(route, json={"model_path": path}, headers={"X-API-Key": API_KEY})
    assert response.status_code == 422
    assert client.post("/predict", json=transaction(5)).json()["model_version"] == "model-a"


def test_a_huge_extra_field_is_refused_before_storage(
    client: TestClient, writer: FakeWriter
) -> None:
    body = transaction(6, note="x" * 9_000_000)
    response = client.post("/predict", json=body)
    assert 400 <= response.status_code < 500
    assert writer.records == []
    small = client.post("/predict", json=transaction(7, note="fine"))
    assert small.status_code == 200 and writer.records[0].extra == {"note": "fine"}
