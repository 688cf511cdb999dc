"""The API documents itself offline, and every example it documents is answered with 2xx.

``/docs`` and ``/redoc`` load their assets from the API (no CDN). Every request-body example
of the OpenAPI schema (``examples`` of a body's schema, of its items or of a referenced
component) is sent to its route, with the API key, and must succeed: "Try it out" works.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api_support import (
    API_KEY,
    FakeWriter,
    api_settings,
    build_app,
    serve_in_thread,
    transaction,
    write_model,
)
from vigil.config import Settings
from vigil.features import feature_names
from vigil.reports.browser import CHROMIUM, chromium
from vigil.serving.schemas import FEATURES_EXAMPLE


@pytest.fixture
def client(
    small_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    monkeypatch.chdir(tmp_path)  # the admin examples name models/... relative paths
    settings = api_settings(small_settings)
    settings = settings.model_copy(
        update={
            "storage": settings.storage.model_copy(
                update={"database_url": f"sqlite:///{tmp_path / 'vigil.db'}"}
            )
        }
    )
    model = write_model(settings, tmp_path / "models/current/model.onnx", "model-a")
    write_model(settings, tmp_path / "models/next/model.onnx", "model-b")
    with TestClient(build_app(settings, model, FakeWriter()), raise_server_exceptions=False) as c:
        yield c


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    node: Any = spec
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return dict(node)


def _examples(spec: dict[str, Any]) -> list[tuple[str, str, Any]]:
    found = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema")
            if schema is None:
                continue
            schema = _resolve(spec, schema)
            if schema.get("type") == "array":
                items = _resolve(spec, schema["items"])
                found += [(method, path, [ex]) for ex in items.get("examples", [])]
            found += [(method, path, ex) for ex in schema.get("examples", [])]
    return found


def test_every_request_example_is_answered_with_2xx(client: TestClient) -> None:
    examples = _examples(client.get("/openapi.json").json())
    routes = {(m, p) for m, p, _ in examples}
    assert {("post", "/predict"), ("post", "/forward"), ("post", "/forward_batch")} <= routes
    assert len([e for e in examples if e[1] == "/forward"]) == 3  # transaction, by name, list
    for method, path, example in examples:
        response = client.request(method, path, json=example, headers={"X-API-Key": API_KEY})
        assert 200 <= response.status_code < 300, (method, path, example, response.text)


def test_forward_example_features_are_the_default_models(small_settings: Settings) -> None:
    assert list(FEATURES_EXAMPLE) == feature_names(Settings().features)


def test_forward_takes_a_transaction_like_predict_and_stores_nothing(
    small_settings: Settings, tmp_path: Path
) -> None:
    settings = api_settings(small_settings)
    writer = FakeWriter()
    model = write_model(settings, tmp_path / "a.onnx", "model-a")
    with TestClient(build_app(settings, model, writer)) as c:
        body = transaction(7, amount=250.0)
        forward = c.post("/forward", json=body)
        batch = c.post("/forward_batch", json=[body])
        bad = c.post("/forward", json={**body, "tx_amount": -1})
        assert forward.status_code == 200, forward.text
        assert forward.json() == batch.json()["results"][0]
        assert bad.status_code == 400 and bad.content == b"bad request"
    assert writer.records == []


def test_docs_and_redoc_load_their_assets_from_the_api(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page)
        assert html.status_code == 200
        assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
        assert assets, html.text
        assert not [a for a in assets if a.startswith(("http:", "https:", "//"))], assets
        for asset in assets:
            assert client.get(asset).status_code == 200, asset
    assert "swagger-ui-bundle.js" in client.get("/docs").text
    assert "redoc.standalone.js" in client.get("/redoc").text


@pytest.fixture
def docs_app(small_settings: Settings, tmp_path: Path) -> Iterator[str]:
    """The API under a real server, for a real browser."""
    settings = api_settings(small_settings)
    model = write_model(settings, tmp_path / "model.onnx", "model-a")
    with serve_in_thread(build_app(settings, model, FakeWriter())) as url:
        yield url


def test_docs_and_redoc_render_every_route_in_a_real_browser(docs_app: str) -> None:
    """FastAPI emits OpenAPI 3.1: Swagger UI 3/4 shows "Unable to render this definition"."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} missing: apt-get install chromium")
        pytest.skip(f"{CHROMIUM} missing")
    with chromium() as page:
        page.goto(f"{docs_app}/docs")
        page.wait_for_selector(".opblock-summary-path", timeout=30_000)
        paths = set(page.locator(".opblock-summary-path").all_inner_texts())
        assert {"/predict", "/forward", "/health", "/metadata"} <= paths, paths
        assert "Unable to render" not in page.content()
        page.goto(f"{docs_app}/redoc")
        page.wait_for_selector("[data-section-id^='operation/']", timeout=30_000)
        assert page.locator("[data-section-id^='operation/']").count() >= 4
