"""One pure-ASGI middleware: request id, body-size limit, request metrics.

Pure ASGI rather than ``BaseHTTPMiddleware``: it adds microseconds, not a task per request,
which matters at thousands of requests per second on one core.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import time
from collections.abc import Iterable

import orjson
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vigil.monitoring import VigilMetrics
from vigil.monitoring.prometheus import observe_many
from vigil.serving.context import request_id_var
from vigil.serving.errors import PayloadTooLarge

REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
UNMATCHED_ROUTE = "unmatched"
INTERNAL_ERROR = "internal server error"

log = logging.getLogger(__name__)


class RequestIds:
    """Fresh request ids: 16 hex digits, a random per-process prefix and a counter.

    Unique within a process (the counter) and across processes and restarts (the prefix),
    without a system call per request as ``os.urandom`` would cost; an id correlates log
    lines, it is no secret.
    """

    def __init__(self) -> None:
        self._prefix = os.urandom(4).hex().encode()
        self._counter = itertools.count()

    def fresh(self) -> bytes:
        """The next id."""
        return b"%s%08x" % (self._prefix, next(self._counter) & 0xFFFFFFFF)


def _request_id(headers: Iterable[tuple[bytes, bytes]], ids: RequestIds) -> bytes:
    """The caller's ``X-Request-ID`` when well-formed, otherwise a fresh one."""
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            if _VALID_REQUEST_ID.match(value):
                return value
            break
    return ids.fresh()


def content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    """The request's ``Content-Length`` (None when absent or malformed: a chunked body)."""
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def error_body(detail: str, request_id: bytes) -> bytes:
    """The JSON body of an error the middleware answers itself (413, 500)."""
    return orjson.dumps({"detail": detail, "request_id": request_id.decode()})


async def _send_json(send: Send, status: int, detail: str, request_id: bytes) -> None:
    body = error_body(detail, request_id)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (REQUEST_ID_HEADER, request_id),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ServiceMiddleware:
    """Tags each HTTP request with an id, enforces the upload limit and records metrics."""

    def __init__(self, app: ASGIApp, metrics: VigilMetrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self._counters: dict[tuple[str, int], Counter] = {}
        self._durations: dict[str, Histogram] = {}
        self._observed: list[tuple[str, int, float]] = []
        self._ids = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Wrap one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope["headers"], self._ids)
        token = request_id_var.set(request_id.decode())
        status_code: int | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                message["headers"] = [*message.get("headers", ()), (REQUEST_ID_HEADER, request_id)]
            await send(message)

        try:
            length = content_length(scope["headers"])
            body: Receive | None = receive  # the server reads exactly Content-Length bytes
            if length is None:  # chunked
                body = await self._read_body(receive)
            elif length > self.max_body_bytes:
                body = None
            if body is None:
                status_code = 413
                detail = PayloadTooLarge(self.max_body_bytes).detail
                await _send_json(send, status_code, detail, request_id)
            else:
                await self.app(scope, body, send_with_id)
        except Exception:
            # The one place unexpected errors end: logged with the request id, answered with
            # a generic 500 that reveals nothing.
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if status_code is not None:
                raise  # the response has started: nothing sensible can be sent any more
            status_code = 500
            await _send_json(send, 500, INTERNAL_ERROR, request_id)
        finally:
            self._record(scope, status_code or 500, time.perf_counter() - started)
            request_id_var.reset(token)

    def request_id(self, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
        """The caller's well-formed ``X-Request-ID``, otherwise a fresh one of this process."""
        return _request_id(headers, self._ids)

    async def _read_body(self, receive: Receive) -> Receive | None:
        """A body of unknown length (chunked) read here up to the limit, then replayed to the
        app; None past the limit. Read here, not counted while the app reads: FastAPI turns any
        error raised while it parses a body into a 400 "There was an error parsing the body",
        so a limit raised from ``receive`` was a 413 on some routes and a 400 on others."""
        messages: list[Message] = []
        received = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":  # the client left: the app sees it too
                break
            received += len(message.get("body", b""))
            if received > self.max_body_bytes:
                return None
            if not message.get("more_body", False):
                break
        pending = iter(messages)

        async def replay() -> Message:
            return next(pending, None) or await receive()

        return replay

    def _record(self, scope: Scope, status_code: int, seconds: float) -> None:
        """Buffer one request's metrics; :meth:`_flush` applies them once per loop iteration."""
        route = scope.get("route")
        if route is not None:
            template = route.path
        else:  # the hot routes (serving/hotpath.py) set only "endpoint"
            template = scope["path"] if "endpoint" in scope else UNMATCHED_ROUTE
        self.record(template, status_code, seconds)

    def record(self, template: str, status_code: int, seconds: float) -> None:
        """Buffer one answered request of route ``template`` (also the direct /forward)."""
        self._observed.append((template, status_code, seconds))
        if len(self._observed) == 1:
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Count and observe the buffered requests: one update per label set, not per request."""
        observed, self._observed = self._observed, []
        counts: dict[tuple[str, int], int] = {}
        durations: dict[str, list[float]] = {}
        for template, status_code, seconds in observed:
            counts[(template, status_code)] = counts.get((template, status_code), 0) + 1
            durations.setdefault(template, []).append(seconds)
        for (template, status_code), count in counts.items():
            counter = self._counters.get((template, status_code))
            if counter is None:
                counter = self.metrics.http_requests.labels(route=template, status=str(status_code))
                self._counters[(template, status_code)] = counter
            counter.inc(count)
        for template, values in durations.items():
            duration = self._durations.get(template)
            if duration is None:
                duration = self.metrics.http_request_duration.labels(route=template)
                self._durations[template] = duration
            observe_many(duration, values)
