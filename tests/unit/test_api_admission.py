"""Admission control: past the in-flight limit (fixed, or following latency), past the queue
deadline or while the loop lags, scoring requests get a fast 503 + Retry-After."""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api_support import (
    FakeWriter,
    api_settings,
    build_app,
    serve_in_thread,
    transaction,
    write_model,
)
from vigil.cli.serve_commands import uvicorn_options
from vigil.config import DEFAULT_CONFIG_PATH, ServingConfig, Settings, load_settings
from vigil.monitoring import create_metrics
from vigil.serving.admission import SHED_DETAIL, AdmissionGate, LatencyLimit
from vigil.serving.direct import direct_protocol
from vigil.serving.shedding import shedding_protocol
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


def _scope() -> Scope:
    return {"type": "http", "method": "POST", "path": "/predict", "headers": []}


async def _call(app: AdmissionGate, scope: Scope | None = None) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope if scope is not None else _scope(), receive, send)
    return sent


class _Clock:
    """A fake clock: seconds advance only when the test says."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _gate(
    inner: ASGIApp, clock: Callable[[], float] = time.perf_counter, **serving: Any
) -> AdmissionGate:
    return AdmissionGate(inner, ServingConfig(**serving), create_metrics(), clock)


def _shed(gate: AdmissionGate, reason: str) -> float:
    """Requests the gate refused for ``reason`` (``vigil_http_requests_shed_total``)."""
    return gate._shed.labels(reason=reason)._value.get()


async def test_gate_admits_up_to_the_limit_and_refuses_the_rest_at_once() -> None:
    inner = _Held()
    gate = _gate(inner, max_in_flight=2, retry_after_s=3)
    admitted = [asyncio.ensure_future(_call(gate)) for _ in range(2)]
    await asyncio.sleep(0)
    refused = await asyncio.wait_for(_call(gate), 1.0)  # answered while the others are held
    start, body = refused
    assert start["status"] == 503
    assert (b"retry-after", b"3") in start["headers"]
    assert orjson.loads(body["body"])["detail"] == SHED_DETAIL
    assert (inner.entered, gate.in_flight, _shed(gate, "in_flight")) == (2, 2, 1)
    assert _shed(gate, "queued") == _shed(gate, "loop_lag") == 0
    inner.release.set()
    for done in await asyncio.gather(*admitted):
        assert done[0]["status"] == 200
    assert gate.in_flight == 0
    assert (await _call(gate))[0]["status"] == 200  # room again once they are answered


async def test_a_failing_request_leaves_the_gate() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    gate = _gate(broken, max_in_flight=1)
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
    gate = _gate(inner, max_in_flight=100, max_loop_lag_ms=20)
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
        assert (_shed(gate, "loop_lag"), _shed(gate, "in_flight")) == (1, 0)
        lags = gate._lag.collect()[0].samples
        late = next(s.value for s in lags if s.labels.get("le") == "0.05")
        total = next(s.value for s in lags if s.name.endswith("_count"))
        assert total - late >= 2  # the two late probes (~100 ms) in the loop-lag histogram
        for _ in range(100):  # caught up: the next probes are on time again
            await asyncio.sleep(0.01)
            if not gate.lagging:
                break
        assert (await _call(gate))[0]["status"] == 200
    finally:
        await gate.stop()


# -- the limit that follows latency (fake clock) -----------------------------------------


def _window(
    limit: LatencyLimit, clock: _Clock, latencies: list[float], reached: bool = True
) -> None:
    """One window's answers, evenly spread over it: the first opens it, the last closes it;
    ``reached``: the limit was reached in it (requests were held back)."""
    if reached:
        limit.reached()
    step = limit.window_s / (len(latencies) - 1) + 1e-9  # past float rounding
    clock.now += step
    for latency in latencies:
        limit.observe(latency, clock.now)
        clock.now += step


def test_the_limit_falls_in_proportion_while_answers_are_late_down_to_its_floor() -> None:
    clock = _Clock()
    limit = LatencyLimit(ceiling=128, target_s=0.02)
    _window(limit, clock, [0.001] * 10)  # opens the first window on time: nothing changes
    assert limit.limit == 128
    # The fastest answer of each window took 5 ms: the late ones waited in a queue.
    _window(limit, clock, [0.005] + [0.022] * 9)  # 1.1x the target: cut by a fifth at least
    assert limit.limit == 102
    _window(limit, clock, [0.005] + [0.03] * 9)  # 1.5x the target: cut in proportion, to 2/3
    assert limit.limit == 68
    _window(limit, clock, [0.005] + [0.2] * 9)  # 10x the target: cut by half at most
    assert limit.limit == 34
    for _ in range(20):
        _window(limit, clock, [0.005] + [0.2] * 9)
    assert limit.limit == limit.floor == 32  # a quarter of the ceiling


@pytest.mark.parametrize(("ceiling", "floor"), [(128, 32), (40, 10), (8, 4), (2, 2)])
def test_the_floor_is_a_quarter_of_the_ceiling_at_least_four(ceiling: int, floor: int) -> None:
    assert LatencyLimit(ceiling, target_s=0.02).floor == floor


def test_a_few_late_answers_do_not_cut_the_limit() -> None:
    clock = _Clock()
    limit = LatencyLimit(ceiling=64, target_s=0.02)
    for _ in range(3):  # 1 late answer in 20: below the window's 90th percentile
        _window(limit, clock, [0.005] * 19 + [1.0])
    assert limit.limit == 64


def test_late_answers_below_the_limit_keep_it() -> None:
    """The limit was never reached: no queue it could shorten, refusing would only add 503s."""
    clock = _Clock()
    limit = LatencyLimit(ceiling=64, target_s=0.02)
    for _ in range(5):
        _window(limit, clock, [0.005] + [0.2] * 9, reached=False)
    assert limit.limit == 64


def test_a_slow_service_without_a_queue_lets_more_in() -> None:
    """Every answer about as slow (a slow database, not waiting behind the others): fewer
    in flight would not be faster, so the limit grows until answers start to queue."""
    clock = _Clock()
    limit = LatencyLimit(ceiling=256, target_s=0.02)
    _window(limit, clock, [0.005] + [0.2] * 9)
    assert limit.limit == 128  # queued: halved
    for _ in range(3):
        _window(limit, clock, [0.03, 0.035, 0.04, 0.045, 0.05])  # late alike: no queue
    assert limit.limit == 169  # 128 -> 140 -> 154 -> 169
    _window(limit, clock, [0.01, 0.022, 0.025, 0.03, 0.035])  # some waited 3x the fastest
    assert limit.limit == 112  # cut in proportion: 169 x 0.02 / 0.03


def test_the_limit_grows_back_while_answers_are_within_the_target() -> None:
    """After a surge the limit returns to its ceiling once answers are on time again, whether
    or not it holds requests back (it stayed at its floor after the full stress plan's surge,
    and 1,000 req/s then shed 1-5 % each second); late answers below the limit keep it."""
    clock = _Clock()
    limit = LatencyLimit(ceiling=40, target_s=0.02)
    for _ in range(10):
        _window(limit, clock, [0.01] + [0.5] * 4)
    assert limit.limit == limit.floor == 10
    _window(limit, clock, [0.005] + [0.2] * 4, reached=False)  # late, nothing held back
    assert limit.limit == 10
    grown = []
    for index in range(30):
        _window(limit, clock, [0.005] * 5, reached=index % 2 == 0)
        grown.append(limit.limit)
    assert grown[:3] == [11, 12, 13] and grown == sorted(grown)  # +10 %, at least 1
    assert grown[-1] == 40  # capped by the ceiling (serving.max_in_flight)


@pytest.mark.parametrize(("ceiling", "target_s"), [(0, 0.02), (8, 0.0)])
def test_latency_limit_parameters_must_be_valid(ceiling: int, target_s: float) -> None:
    with pytest.raises(ValueError):
        LatencyLimit(ceiling, target_s)


class _Timed:
    """An inner app whose answers take ``seconds`` (in turn) on the fake clock."""

    def __init__(self, clock: _Clock, *seconds: float) -> None:
        self.clock, self.seconds, self.entered = clock, seconds, 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.clock.now += self.seconds[self.entered % len(self.seconds)]
        self.entered += 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def test_slow_answers_lower_the_gates_limit() -> None:
    clock = _Clock()
    inner = _Timed(clock, 0.002, 0.03, 0.03, 0.03, 0.03)  # most wait: 1.5x the target
    gate = _gate(inner, clock, max_in_flight=64, latency_target_ms=20)
    for _ in range(10):
        gate.in_flight = gate.limit - 1  # the others held: this one takes the last slot
        assert (await _call(gate))[0]["status"] == 200
    assert gate.limit == 27  # two windows closed, each cutting it to 2/3: 64, 42, 27
    gate.in_flight = gate.limit  # that many held: the next one is refused
    assert (await _call(gate))[0]["status"] == 503
    assert inner.entered == 10


async def test_a_request_queued_past_the_deadline_is_refused_before_any_work() -> None:
    clock = _Clock()
    inner = _Timed(clock, 0.0)
    gate = _gate(inner, clock, max_in_flight=8, max_queue_ms=10, retry_after_s=2)
    waits = gate._queue_wait

    def admitted(waited_s: float) -> Scope:
        scope = _scope()
        gate.admit(scope)  # as the server's protocol does when it reads the request
        clock.now += waited_s
        return scope

    on_time = await _call(gate, admitted(0.009))
    late = await _call(gate, admitted(0.011))
    assert on_time[0]["status"] == 200
    assert late[0]["status"] == 503 and (b"retry-after", b"2") in late[0]["headers"]
    assert (inner.entered, gate.in_flight, _shed(gate, "queued")) == (1, 0, 1)
    await asyncio.sleep(0)  # the waits of a loop iteration are observed right after it
    # Every admitted request waited within the deadline: the histogram saw only the first.
    assert waits._sum.get() == pytest.approx(0.009)


@pytest.mark.parametrize(
    "serving", [{"max_in_flight": 0}, {"max_loop_lag_ms": -1}, {"max_queue_ms": -1}]
)
def test_limits_must_be_valid(serving: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        ServingConfig(**serving)


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
    assert 'vigil_http_requests_shed_total{reason="in_flight"} 4.0' in metrics
    assert 'vigil_http_requests_total{route="/predict",status="503"} 4.0' in metrics


def test_the_server_refuses_before_the_app_and_keeps_the_connection(
    small_settings: Settings, tmp_path: Path
) -> None:
    """``vigil serve``'s protocol: while the gate is overloaded, scoring requests get the
    503 straight from the server (the app never sees them); other routes still answer."""
    settings = api_settings(small_settings, max_loop_lag_ms=0)
    writer = FakeWriter()
    app = build_app(settings, write_model(settings, tmp_path / "m.onnx", "m"), writer)
    gate = app.state.admission
    with (
        serve_in_thread(app, http=shedding_protocol(gate, app.state.metrics)) as base,
        httpx.Client(base_url=base, timeout=10) as client,
    ):
        assert client.post("/predict", json=transaction(1)).status_code == 200
        gate.lagging = True  # as the probe sets it under overload
        refused = [client.post("/predict", json=transaction(t)) for t in (2, 3)]
        health = client.get("/health")
        gate.lagging = False
        again = client.post("/predict", json=transaction(4))
        metrics = client.get("/metrics").text
    for response in refused:
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json() == {
            "detail": SHED_DETAIL,
            "request_id": response.headers["x-request-id"],
        }
    assert health.status_code == 200 and again.status_code == 200
    assert sorted(r.transaction_id for r in writer.records) == [1, 4]
    assert 'vigil_http_requests_shed_total{reason="loop_lag"} 2.0' in metrics
    assert 'vigil_http_requests_shed_total{reason="in_flight"} 0.0' in metrics
    assert 'vigil_http_requests_total{route="/predict",status="503"} 2.0' in metrics


def _metric(exposition: str, name: str) -> float:
    """A sample's value in a Prometheus exposition (``name`` with its labels)."""
    for line in exposition.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not exposed")


class _OneConnectionWriter(FakeWriter):
    """Commits one batch at a time, ``seconds`` each: batches queue behind each other, as
    they do for a database's connections when more is admitted than it commits."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self._connection = asyncio.Lock()

    async def submit_many(self, records: list[PredictionRecord]) -> list[RecordRejected | None]:
        async with self._connection:
            await asyncio.sleep(self.seconds)
            return await super().submit_many(records)


def test_under_overload_only_requests_within_the_deadline_are_admitted(
    small_settings: Settings, tmp_path: Path
) -> None:
    """100 clients each sending requests back to back, more than the server lets in: every
    request is answered (none dropped with its connection), the surplus gets 503 +
    Retry-After, no admitted request waited past ``max_queue_ms`` before its handler, every
    200 is stored. (How the limit moves is the fake-clock tests' job: in one process the
    clients share the server's interpreter, so its latencies are theirs.)"""
    settings = api_settings(
        small_settings, max_in_flight=64, latency_target_ms=20, max_queue_ms=25, max_loop_lag_ms=0
    )
    writer = _OneConnectionWriter(seconds=0.01)
    app = build_app(settings, write_model(settings, tmp_path / "m.onnx", "m"), writer)
    protocol = shedding_protocol(app.state.admission, app.state.metrics)
    clients, each = 100, 8

    async def overload(base: str) -> dict[int, httpx.Response]:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        answers: dict[int, httpx.Response] = {}
        async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:

            async def send(first: int) -> None:
                for tid in range(first, first + each):
                    answers[tid] = await client.post("/predict", json=transaction(tid))

            await asyncio.gather(*(send(1 + c * each) for c in range(clients)))
        return answers

    with serve_in_thread(app, http=protocol) as base:
        answers = asyncio.run(overload(base))
        metrics = httpx.get(f"{base}/metrics").text
    ok = sorted(t for t, r in answers.items() if r.status_code == 200)
    shed = [r for r in answers.values() if r.status_code == 503]
    assert ok and shed and len(ok) + len(shed) == len(answers)
    assert all(r.headers["retry-after"] == "1" for r in shed)
    assert len(answers) == clients * each  # every request answered
    assert sorted(r.transaction_id for r in writer.records) == ok  # nothing admitted is lost
    assert 4 <= _metric(metrics, "vigil_http_admission_limit") <= 64
    admitted = _metric(metrics, "vigil_http_admission_wait_seconds_count")
    within = _metric(metrics, 'vigil_http_admission_wait_seconds_bucket{le="0.025"}')
    assert admitted == within == len(ok)  # none waited past the deadline before its work


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
@pytest.mark.parametrize("path", ["/predict", "/forward"])
def test_a_request_waiting_when_the_keep_alive_timeout_runs_is_answered(
    small_settings: Settings, tmp_path: Path, loop: str, path: str
) -> None:
    """Under overload the server's loop runs late: the keep-alive timeout of an idle
    connection can run while the client's next request, sent in time, already waits in the
    socket. uvloop runs due timers before it polls for reads, so uvicorn's timeout closed
    the connection with that request unread (the client got ``httpx.ReadError``; asyncio
    reads first). ``vigil serve``'s protocol reads and answers it."""
    settings = api_settings(small_settings, max_loop_lag_ms=0)
    writer = FakeWriter()
    app = build_app(settings, write_model(settings, tmp_path / "m.onnx", "m"), writer)
    loops: list[asyncio.AbstractEventLoop] = []

    class Protocol(direct_protocol(app)):  # type: ignore[misc]
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            loops.append(self.loop)
            super().connection_made(transport)  # type: ignore[arg-type]

    def post(connection: http.client.HTTPConnection, tid: int) -> int:
        headers = {"content-type": "application/json"}
        connection.request("POST", path, orjson.dumps(transaction(tid)), headers)
        response = connection.getresponse()
        response.read()
        return response.status

    def busy(reading: socket.socket) -> None:  # reading other connections takes the loop 1 s
        loops[0].remove_reader(reading)
        time.sleep(1.0)

    options = {"http": Protocol, "loop": loop, "timeout_keep_alive": 0.3}
    reading, other = socket.socketpair()
    with serve_in_thread(app, **options) as base, reading, other:
        host, port = base.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            assert post(connection, 1) == 200  # answered: the 0.3 s timeout runs from here
            loops[0].call_soon_threadsafe(loops[0].add_reader, reading, busy, reading)
            other.send(b"x")
            time.sleep(0.05)
            assert post(connection, 2) == 200  # sent in time; before the fix: closed unread
        finally:
            connection.close()
    if path == "/predict":
        assert sorted(r.transaction_id for r in writer.records) == [1, 2]


def test_vigil_serve_keeps_idle_connections_longer_than_its_clients() -> None:
    """The client must be the side that closes an idle keep-alive connection: with equal
    timeouts (uvicorn's and httpx's 5 s) the server closed connections as clients reused
    them, and their requests met a reset (the overload test's ``httpx.ReadError``)."""
    options = uvicorn_options(load_settings(DEFAULT_CONFIG_PATH), None, None)
    assert options["timeout_keep_alive"] > 60 > httpx.Limits().keepalive_expiry  # 60: AWS ALB


def test_a_request_refused_before_the_gate_gives_its_slot_back(
    small_settings: Settings, tmp_path: Path
) -> None:
    """``vigil serve``'s protocol takes a scoring request's slot as it reads the headers; a
    request answered before the gate (413: its declared body is over the upload limit) gives
    the slot back, and one uvicorn hands to its WebSocket protocol takes none, so bad requests
    cannot fill the limit and shed every later request."""
    settings = api_settings(
        small_settings, max_in_flight=4, max_upload_bytes=1_000, max_loop_lag_ms=0
    )
    writer = FakeWriter()
    app = build_app(settings, write_model(settings, tmp_path / "m.onnx", "m"), writer)
    gate = app.state.admission
    too_large = orjson.dumps({**transaction(1), "padding": "x" * 2_000})
    headers = {"content-type": "application/json"}
    with serve_in_thread(app, http=shedding_protocol(gate, app.state.metrics)) as base:
        for path in ("/predict", "/forward") * 4:
            with httpx.Client(base_url=base, timeout=10) as client:
                assert client.post(path, content=too_large, headers=headers).status_code == 413
        upgrade = (
            b"POST /predict HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\n"
            b"sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )  # uvicorn hands it to its WebSocket protocol: no task of this protocol runs it
        host, port = base.removeprefix("http://").split(":")
        for _ in range(6):
            with socket.create_connection((host, int(port)), timeout=10) as raw:
                raw.sendall(upgrade)
                assert raw.recv(64).startswith(b"HTTP/1.1 ")  # answered (not upgraded)
        with httpx.Client(base_url=base, timeout=10) as client:
            answer = client.post("/predict", json=transaction(2))
    assert answer.status_code == 200
    assert gate.in_flight == 0
    assert [r.transaction_id for r in writer.records] == [2]


def test_a_pipelined_request_of_a_lost_connection_gives_its_slot_back(
    small_settings: Settings, tmp_path: Path
) -> None:
    """A scoring request pipelined behind a slow one is admitted as it is read; when the
    client leaves before it ran, the server gives its slot back."""
    settings = api_settings(small_settings, max_in_flight=4, max_loop_lag_ms=0)
    app = build_app(settings, write_model(settings, tmp_path / "m.onnx", "m"), _SlowWriter(0.3))
    gate = app.state.admission
    requests = b""
    for tid in (1, 2):
        body = orjson.dumps(transaction(tid))
        requests += (
            b"POST /predict HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
    with serve_in_thread(app, http=shedding_protocol(gate, app.state.metrics)) as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as client:
            client.sendall(requests)
            deadline = time.monotonic() + 10
            while gate.in_flight < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert gate.in_flight == 2  # both admitted, the second queued behind the first
        deadline = time.monotonic() + 10
        while gate.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gate.in_flight == 0
