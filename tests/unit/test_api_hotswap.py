"""Hot model swap under load: no request fails and every answer names the model behind it."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import httpx
import pytest

from api_support import (
    API_KEY,
    FakeWriter,
    api_settings,
    build_app,
    expected_score,
    transaction,
    write_model,
)
from vigil.config import Settings

BIASES = {"model-a": -5.0, "model-b": -1.0}  # the score tells which model produced it
MIN_REQUESTS = 200
CONCURRENCY = 32
N_SWAPS = 2


async def test_swapping_models_while_requests_flow(
    small_settings: Settings, tmp_path: Path
) -> None:
    settings = api_settings(small_settings)
    paths = {v: write_model(settings, tmp_path / f"{v}.onnx", v, b) for v, b in BIASES.items()}
    writer = FakeWriter()
    app = build_app(settings, paths["model-a"], writer)
    transport = httpx.ASGITransport(app=app)
    ids = itertools.count()
    answers: list[httpx.Response] = []
    swaps_done = asyncio.Event()

    async def client_loop(client: httpx.AsyncClient) -> None:
        # Requests keep flowing until every swap is done (and at least MIN_REQUESTS were sent).
        while not swaps_done.is_set() or len(answers) < MIN_REQUESTS:
            tid = next(ids)
            body = transaction(tid, amount=57.16, customer_id=tid, terminal_id=tid)
            answers.append(await client.post("/predict", json=body))

    async def swapper(client: httpx.AsyncClient) -> list[str]:
        versions = []
        try:
            for i in range(N_SWAPS):
                version = "model-b" if i % 2 == 0 else "model-a"
                response = await client.post(
                    "/admin/reload",
                    json={"model_path": str(paths[version])},
                    headers={"X-API-Key": API_KEY},
                )
                versions.append(response.json().get("model_version"))
                await asyncio.sleep(0.01)
        finally:
            swaps_done.set()
        return versions

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://vigil") as client,
    ):
        flows = asyncio.gather(*(client_loop(client) for _ in range(CONCURRENCY)), swapper(client))
        *_, swapped = await asyncio.wait_for(flows, timeout=60)

    assert swapped == ["model-b", "model-a"] * (N_SWAPS // 2)
    assert [a.status_code for a in answers] == [200] * len(answers)
    bodies = [a.json() for a in answers]
    for body in bodies:
        bias = BIASES[body["model_version"]]
        assert body["score"] == pytest.approx(expected_score(57.16, bias), abs=1e-6)
    assert {b["model_version"] for b in bodies} == set(BIASES)  # both models really served
    stored = {r.transaction_id: r.model_version for r in writer.records}
    assert stored == {b["transaction_id"]: b["model_version"] for b in bodies}
