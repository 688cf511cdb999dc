"""Admission control: past ``serving.max_in_flight`` scoring requests, a fast 503 + Retry-After."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client import CollectorRegistry, Counter
from starlette.types import Message, Receive, Scope, Send

from api_support import (
    FakeWriter,
    api_settings,
    build_app,
    serve_in_thread,
    transaction,
    write_model,
)
from vigil.config import Settings
from vigil.serving.admission import SHED_DETAIL, AdmissionGate
from vigil.storage import PredictionRecord, RecordRejected


class _Held:
    """An inner app that answers 200 once ``release`` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.entered += 1
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def _call(app: AdmissionGate) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": []}
    await app(scope, receive, send)
    return sent


def _shed_counter() -> Counter:
    return Counter("shed", "test", registry=CollectorRegistry())


async def test_gate_admits_up_to_the_limit_and_refuses_the_rest_at_once() -> None:
    inner = _Held()
    shed = _shed_counter()
    gate = AdmissionGate(inner, max_in_flight=2, retry_after_s=3, shed=shed)
    admitted = [asyncio.ensure_future(_call(gate)) for _ in range(2)]
    await asyncio.sleep(0)
    refused = await asyncio.wait_for(_call(gate), 1.0)  # answered while the others are held
    start, body = refused
    assert start["status"] == 503
    assert (b"retry-after", b"3") in start["headers"]
    assert orjson.loads(body["body"])["detail"] == SHED_DETAIL
    assert (inner.entered, gate.in_flight, shed._value.get()) == (2, 2, 1)
    inner.release.set()
    for done in await asyncio.gather(*admitted):
        assert done[0]["status"] == 200
    assert gate.in_flight == 0
    assert (await _call(gate))[0]["status"] == 200  # room again once they are answered


async def test_a_failing_request_leaves_the_gate() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    gate = AdmissionGate(broken, max_in_flight=1, retry_after_s=1, shed=_shed_counter())
    for _ in range(3):
        with pytest.raises(RuntimeError):
            await _call(gate)
    assert gate.in_flight == 0


async def _turns() -> None:
    """A few loop turns: far less than a probe's 5 ms sleep."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_late_event_loop_sheds_until_it_catches_up() -> None:
    inner = _Held()
    inner.release.set()
    gate = AdmissionGate(inner, 100, retry_after_s=1, shed=_shed_counter(), max_loop_lag_ms=20)
    gate.start()
    try:
        await asyncio.sleep(0.02)
        assert (await _call(gate))[0]["status"] == 200
        time.sleep(0.1)  # the loop is blocked: the probe wakes up ~100 ms late
        await _turns()
        assert not gate.lagging  # one late probe is a hiccup
        await asyncio.sleep(0.002)  # the next probe is due...
        time.sleep(0.1)  # ...and late again
        await _turns()
        assert gate.lagging
        assert (await _call(gate))[0]["status"] == 503
        for _ in range(100):  # caught up: the next probes are on time again
            await asyncio.sleep(0.01)
            if not gate.lagging:
                break
        assert (await _call(gate))[0]["status"] == 200
    finally:
        await gate.stop()


@pytest.mark.parametrize(("in_flight", "lag_ms"), [(0, 10.0), (1, -1.0)])
def test_limits_must_be_valid(in_flight: int, lag_ms: float) -> None:
    with pytest.raises(ValueError):
        AdmissionGate(
            _Held(), in_flight, retry_after_s=1, shed=_shed_counter(), max_loop_lag_ms=lag_ms
        )


class _SlowWriter(FakeWriter):
    """Commits take ``seconds``: admitted requests stay in flight that long."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    async def submit_many(self, records: list[PredictionRecord]) -> list[RecordRejected | None]:
        await asyncio.sleep(self.seconds)
        return await super().submit_many(records)


def test_api_sheds_past_the_limit_and_stores_only_what_it_admitted(
    small_settings: Settings, tmp_path: Path
) -> None:
    # No lag bound here: a busy test machine must not shed what this test admits.
    settings = api_settings(small_settings, max_in_flight=2, retry_after_s=2, max_loop_lag_ms=0)
    writer = _SlowWriter(seconds=2.0)
    app = build_app(settings, write_model(settings, tmp_path / "m.onnx", "m"), writer)
    answers: dict[int, httpx.Response] = {}

    def post(base: str, tid: int) -> None:
        answers[tid] = httpx.post(f"{base}/predict", json=transaction(tid), timeout=30)

    with serve_in_thread(app) as base:
        threads = [threading.Thread(target=post, args=(base, tid)) for tid in range(1, 7)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        metrics = httpx.get(f"{base}/metrics").text
        after = httpx.post(f"{base}/predict", json=transaction(99), timeout=30)
    codes = sorted(r.status_code for r in answers.values())
    assert codes == [200, 200, 503, 503, 503, 503]
    for response in answers.values():
        if response.status_code == 503:
            assert response.headers["retry-after"] == "2"
            assert response.headers["x-request-id"] == response.json()["request_id"]
            assert response.elapsed.total_seconds() < 1.5  # refused at once, not queued
    assert after.status_code == 200  # room again once the admitted ones were answered
    stored = sorted(r.transaction_id for r in writer.records)
    assert stored == [*sorted(t for t, r in answers.items() if r.status_code == 200), 99]
    assert "vigil_http_requests_shed_total 4.0" in metrics
    assert 'vigil_http_requests_total{route="/predict",status="503"} 4.0' in metrics


def test_the_server_refuses_before_the_app_and_keeps_the_connection(
    small_settings: Settings, tmp_path: Path
) -> None:
    """``vigil serve``'s protocol: while the gate is overloaded, scoring requests get the
    503 straight from the server (the app never sees them); other routes still answer."""
    import uvicorn

    from vigil.serving.shedding import shedding_protocol

    settings = api_settings(small_settings, max_loop_lag_ms=0)
    writer = FakeWriter()
    app = build_app(settings, write_model(settings, tmp_path / "m.onnx", "m"), writer)
    gate = app.state.admission
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        http=shedding_protocol(gate, app.state.metrics),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            assert client.post("/predict", json=transaction(1)).status_code == 200
            gate.lagging = True  # as the probe sets it under overload
            refused = [client.post("/predict", json=transaction(t)) for t in (2, 3)]
            health = client.get("/health")
            gate.lagging = False
            again = client.post("/predict", json=transaction(4))
            metrics = client.get("/metrics").text
    finally:
        server.should_exit = True
        thread.join(30)
    for response in refused:
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json() == {
            "detail": SHED_DETAIL,
            "request_id": response.headers["x-request-id"],
        }
    assert health.status_code == 200 and again.status_code == 200
    assert sorted(r.transaction_id for r in writer.records) == [1, 4]
    assert "vigil_http_requests_shed_total 2.0" in metrics
    assert 'vigil_http_requests_total{route="/predict",status="503"} 2.0' in metrics
