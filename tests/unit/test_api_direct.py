"""``vigil serve``'s protocol answers plain ``POST /forward`` itself, exactly as the ASGI route.

Every request is sent twice to one real server: to ``/forward`` (answered by the protocol when
plain) and to ``/forward?via=asgi`` (a query string: always the ASGI route, whose contract the
tests in test_api_scoring.py pin down). Status, body and content type must be identical.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi import FastAPI

import api_support as api
from vigil.config import Settings, build_settings
from vigil.features import feature_names
from vigil.serving.direct import direct_protocol

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    """A real server with ``vigil serve``'s protocol (no loop-lag shedding): (URL, settings)."""
    tmp = tmp_path_factory.mktemp("direct")
    paths = {"storage": {"database_url": f"sqlite:///{tmp / 'vigil.db'}"}}
    settings = api.api_settings(build_settings(paths), max_loop_lag_ms=0, max_upload_bytes=4000)
    with _direct_server(settings, tmp) as (url, _):
        yield url, settings


@contextmanager
def _direct_server(settings: Settings, tmp: Path) -> Iterator[tuple[str, FastAPI]]:
    """The API with a model under ``tmp``, served with ``vigil serve``'s protocol."""
    app = api.build_app(settings, api.write_model(settings, tmp / "m.onnx", "m"), api.FakeWriter())
    with api.serve_in_thread(app, http=direct_protocol(app)) as url:
        yield url, app


def _features(settings: Settings, amount: float) -> dict[str, float]:
    return {n: amount if n == "tx_amount" else 0.0 for n in feature_names(settings.features)}


def _requests(settings: Settings) -> dict[str, dict[str, object]]:
    """httpx.post keyword arguments by case."""
    by_name = {"features": _features(settings, 250.0), "transaction_id": 7}
    return {
        "by name": {"json": by_name},
        "in order": {"json": {"features": list(_features(settings, 80.0).values())}},
        "flagged, reason codes": {"json": {"features": _features(settings, 400.0)}},
        "a transaction": {"json": api.transaction(3)},
        "not json": {"content": b"{not json", "headers": JSON},
        "empty": {"content": b"", "headers": JSON},
        "text/plain": {"content": b'{"features": [1.0]}', "headers": {"content-type": "text/x"}},
        "multipart": {"files": {"file": ("cat.png", b"\x89PNG....", "image/png")}},
        "too few values": {"json": {"features": [1.0, 2.0]}},
        "float32 overflow": {"json": {"features": _features(settings, 1e39)}},
        "over the upload limit": {"json": {"features": _features(settings, 1.0), "x": "y" * 5000}},
        "chunked": {"content": iter([b'{"features": ', b"[1.0, 2.0]}"]), "headers": JSON},
    }


@pytest.mark.parametrize(
    "case",
    ["by name", "in order", "flagged, reason codes", "a transaction", "not json", "empty",
     "text/plain", "multipart", "too few values", "float32 overflow", "over the upload limit",
     "chunked"],
)  # fmt: skip
def test_direct_answers_are_the_asgi_routes_answers(base: tuple[str, Settings], case: str) -> None:
    url, settings = base
    kwargs = _requests(settings)[case]
    direct = httpx.post(f"{url}/forward", **kwargs)  # type: ignore[arg-type]
    kwargs = _requests(settings)[case]  # a fresh body (the chunked one is an iterator)
    through_asgi = httpx.post(f"{url}/forward?via=asgi", **kwargs)  # type: ignore[arg-type]
    assert direct.status_code == through_asgi.status_code
    assert _without_id(direct) == _without_id(through_asgi)  # error bodies name the id
    assert direct.headers["content-type"] == through_asgi.headers["content-type"]
    assert direct.headers["content-length"] == str(len(direct.content))
    assert len(direct.headers["x-request-id"]) == 16  # a fresh id of this process
    assert direct.headers["date"] and direct.headers["server"] == "uvicorn"


def _without_id(response: httpx.Response) -> bytes:
    return response.content.replace(response.headers["x-request-id"].encode(), b"<id>")


def test_direct_answers_echo_the_request_id_and_are_counted(base: tuple[str, Settings]) -> None:
    url, settings = base
    before = _forward_count(url)
    body = {"features": _features(settings, 50.0)}
    answer = httpx.post(f"{url}/forward", json=body, headers={"x-request-id": "abc-123"})
    assert answer.status_code == 200 and answer.headers["x-request-id"] == "abc-123"
    assert _forward_count(url) == before + 1


def _forward_count(url: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith('vigil_http_requests_total{route="/forward",status="200"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _raw(url: str, payload: bytes) -> bytes:
    """Send ``payload`` on one connection; everything the server writes until it closes."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(payload)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    return received


def _post(body: bytes, version: str = "1.1", close: bool = False) -> bytes:
    head = f"POST /forward HTTP/{version}\r\nhost: x\r\ncontent-type: application/json\r\n"
    head += "connection: close\r\n" if close else ""
    return head.encode() + b"content-length: %d\r\n\r\n" % len(body) + body


def test_pipelined_requests_are_answered_in_order_and_http_1_0_closes(
    base: tuple[str, Settings],
) -> None:
    url, settings = base
    ok = httpx.post(f"{url}/forward", json={"features": [0.0] * len(_features(settings, 0))})
    good = ok.request.content
    # Three requests in one write on a keep-alive connection; the last asks to close.
    answers = _raw(url, _post(good) + _post(b"{not json") + _post(good, close=True))
    assert answers.count(b"HTTP/1.1 ") == 3
    first, second, third = answers.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"200") and first.endswith(ok.content)
    assert second.startswith(b"400") and second.endswith(b"bad request")
    assert third.startswith(b"200") and b"connection: close" in third
    # HTTP/1.0 without keep-alive: one answer, then the server closes the connection.
    only = _raw(url, _post(good, version="1.0"))
    assert only.startswith(b"HTTP/1.1 200") and only.endswith(ok.content)


def test_an_overloaded_gate_sheds_forward_before_answering(
    tmp_path: Path, small_settings: Settings
) -> None:
    settings = api.api_settings(small_settings, max_loop_lag_ms=0)
    with _direct_server(settings, tmp_path) as (url, app):
        app.state.admission.lagging = True  # as the probe sets it under overload
        refused = httpx.post(f"{url}/forward", json={"features": _features(settings, 1.0)})
        app.state.admission.lagging = False
        again = httpx.post(f"{url}/forward", json={"features": _features(settings, 1.0)})
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert again.status_code == 200


def test_requests_of_one_loop_turn_share_a_model_run_and_keep_their_own_answers(
    base: tuple[str, Settings],
) -> None:
    """Pipelined in one write, the requests are read in one loop turn and answered as one
    batch (one model run for their feature values); each answer is its request's own."""
    url, settings = base
    bodies = [
        {"features": _features(settings, 250.0), "transaction_id": 1},
        {"features": [1.0, 2.0]},  # too few values: 403, alone
        {"features": _features(settings, 400.0), "transaction_id": 3},  # flagged: reasons
        {"features": _features(settings, 1e39)},  # beyond float32: 403, alone
        api.transaction(5),
        {"features": list(_features(settings, 80.0).values()), "transaction_id": 6},
    ]
    alone = [httpx.post(f"{url}/forward?via=asgi", json=body) for body in bodies]
    raw = b"".join(_post(orjson.dumps(body)) for body in bodies[:-1])
    answers = _raw(url, raw + _post(orjson.dumps(bodies[-1]), close=True))
    parts = answers.split(b"HTTP/1.1 ")[1:]
    assert len(parts) == len(bodies)
    for part, expected in zip(parts, alone, strict=True):
        assert part.startswith(b"%d " % expected.status_code)
        assert part.endswith(expected.content)


def test_a_row_the_model_cannot_score_fails_alone(
    base: tuple[str, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch the model fails on is scored row by row: only the failing row is a 403.

    (Pipelined in one write: read in one loop turn, they form one batch.)"""
    import vigil.decisions.offline as offline
    from vigil.inference.errors import ModelScoringError

    real_decide, calls = offline.decide, []

    def decide(model, ids, matrix, *args):  # type: ignore[no-untyped-def]
        calls.append(list(ids))
        if 666 in ids:
            raise ModelScoringError("the model returned 1 NaN score(s)")
        return real_decide(model, ids, matrix, *args)

    monkeypatch.setattr(offline, "decide", decide)
    parts = _three_pipelined(*base)
    assert [part[:3] for part in parts] == [b"200", b"403", b"200"]
    assert parts[1].endswith("модель не смогла обработать данные".encode())
    assert b'"transaction_id":3' in parts[2]
    assert calls == [[1, 666, 3], [1], [666], [3]]  # one run for the loop turn, then alone


def _three_pipelined(url: str, settings: Settings) -> list[bytes]:
    """Answers to transactions 1, 666 and 3 sent in one write (one loop turn, one batch)."""
    bodies = [
        {"features": _features(settings, float(amount)), "transaction_id": tid}
        for tid, amount in ((1, 10), (666, 20), (3, 30))
    ]
    raw = b"".join(_post(orjson.dumps(body), close=i == 2) for i, body in enumerate(bodies))
    return _raw(url, raw).split(b"HTTP/1.1 ")[1:]


def test_an_unexpected_error_in_a_batch_fails_only_its_request(
    base: tuple[str, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that raises an unexpected error is answered request by request: only the
    request that raises it gets the generic 500, its neighbours their decisions."""
    import vigil.decisions.offline as offline

    real_decide = offline.decide

    def decide(model, ids, matrix, *args):  # type: ignore[no-untyped-def]
        if 666 in ids:
            raise RuntimeError("a bug")
        return real_decide(model, ids, matrix, *args)

    monkeypatch.setattr(offline, "decide", decide)
    parts = _three_pipelined(*base)
    assert [part[:3] for part in parts] == [b"200", b"500", b"200"]
    assert b'"detail":"internal server error"' in parts[1] and b"a bug" not in parts[1]
    assert b'"transaction_id":3' in parts[2]


@pytest.mark.parametrize("overloaded", [False, True], ids=["answered", "shed"])
def test_a_client_that_reads_no_answers_is_not_answered_into_memory(
    tmp_path: Path, small_settings: Settings, overloaded: bool
) -> None:
    """Pipelined requests from a client that never reads, answered directly or shed: once the
    server's write buffer is full, the next request takes uvicorn's path, which stops reading
    the connection, so the client's sends block; the server does not read on and buffer
    answers without bound."""
    settings = api.api_settings(small_settings, max_loop_lag_ms=0)
    request = _post(orjson.dumps({"features": list(_features(settings, 1.0).values())}))
    chunks = 200  # 200,000 requests: ~46 MB, more than the kernel's buffers can take in
    sent = 0
    with _direct_server(settings, tmp_path) as (url, app), socket.socket() as conn:
        app.state.admission.lagging = overloaded  # as the probe sets it under overload
        host, port = url.removeprefix("http://").split(":")
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        conn.connect((host, int(port)))
        conn.settimeout(3)
        try:
            for _ in range(chunks):
                conn.sendall(request * 1000)
                sent += 1
        except TimeoutError:
            pass  # the server stopped reading: what the test expects
    assert sent < chunks
