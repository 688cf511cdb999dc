"""Admission control at the HTTP server: refuse a scoring request before it becomes a task.

Under a surge of ten times what one core can score, refusing through the ASGI app still costs
what uvicorn spends on every request (scope, task, response cycle: ~75 µs on these cores), and
10,000 refusals a second would take most of the core the admitted requests need. This
``httptools`` protocol asks the same :class:`~vigil.serving.admission.AdmissionGate` as soon
as a request's headers are parsed: when it is overloaded and the request is a scoring route,
the body is discarded as it arrives and a ready-made 503 with ``Retry-After`` and a request id
goes straight to the socket, with no ASGI call at all. A scoring request the gate admits takes
its slot and its arrival stamp here, so the gate's queue deadline counts from the moment the
server read it; the slot comes back when the gate never sees the request (answered 413 before
it, or pipelined on a connection that was lost before it ran). Everything else takes
uvicorn's normal path. ``vigil serve`` uses it with one process.

An idle keep-alive connection is closed when its timeout runs (``serving.keep_alive_s``,
longer than clients keep theirs, so that they close first) only if no request waits in its
socket: under overload the loop runs late, and uvloop runs due timers before it polls for
reads, so uvicorn's timeout closed connections whose client had sent its next request in
time, unread and unanswered (the client saw the connection reset).
"""

from __future__ import annotations

import asyncio
import os
import select
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from vigil.monitoring import VigilMetrics
from vigil.serving.admission import AdmissionGate
from vigil.serving.hotpath import HotRoutes
from vigil.serving.middleware import REQUEST_ID_HEADER

_PATHS = {path.encode(): path for path in HotRoutes.PATHS}


def _has_input(transport: asyncio.BaseTransport) -> bool:
    """Whether ``transport``'s socket holds input the loop has not read yet (or its end)."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))


class TurnWriter:
    """A connection's transport whose writes of one event-loop turn go out in one write.

    ``write`` keeps the data; the turn's writers are flushed together by one callback the
    loop runs after the callbacks already due (the answers of that turn), so nothing waits
    for more than the rest of the turn. ``close`` flushes first. Every other attribute is the
    transport's own; ``is_closing`` (asked after every answer) is the transport's bound method
    itself, since reaching it through ``__getattr__`` costs a failed look-up first.
    """

    __slots__ = ("_chunks", "_transport", "_turn", "is_closing")

    def __init__(self, transport: asyncio.Transport, turn: _Turn) -> None:
        self._transport = transport
        self._turn = turn
        self._chunks: list[bytes] = []
        self.is_closing = transport.is_closing

    def write(self, data: bytes) -> None:
        """Keep ``data`` until the end of the loop turn."""
        if not self._chunks:
            self._turn.add(self)
        self._chunks.append(data)

    def flush(self) -> None:
        """Write what was kept, in one call (nothing once the connection is closing)."""
        chunks, self._chunks = self._chunks, []
        if chunks and not self._transport.is_closing():
            self._transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def close(self) -> None:
        """Flush, then close the transport."""
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Turn:
    """The writers with data kept in the current loop turn, flushed by one callback."""

    def __init__(self) -> None:
        self._writers: list[TurnWriter] = []

    def add(self, writer: TurnWriter) -> None:
        self._writers.append(writer)
        if len(self._writers) == 1:
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        writers, self._writers = self._writers, []
        for writer in writers:
            writer.flush()


def shedding_protocol(gate: AdmissionGate, metrics: VigilMetrics) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, refusing scoring requests while ``gate`` is overloaded."""
    counters = {
        raw: metrics.http_requests.labels(route=path, status="503") for raw, path in _PATHS.items()
    }

    turn = _Turn()

    class SheddingProtocol(HttpToolsProtocol):
        # A request this protocol answers itself instead of uvicorn's request-response cycle
        # (refused here, or taken by a subclass): what answers it once its body has arrived,
        # and that body so far (None: discarded).
        _answer: Callable[[], None] | None = None
        _body: list[bytes] | None = None
        _refused: bytes = b""  # the path of the request being refused
        _reason: str = ""  # and why (the gate's reason)

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.transport = TurnWriter(transport, turn)  # type: ignore[assignment]

        def on_headers_complete(self) -> None:
            path = self.url.split(b"?", 1)[0]
            if (
                path not in counters
                or self.parser.get_method() != b"POST"
                or self.parser.should_upgrade()  # uvicorn may hand it to another protocol
            ):
                super().on_headers_complete()
                return
            reason = gate.refusing
            admit = reason is None
            idle = self.cycle is None or self.cycle.response_complete  # not pipelined
            if reason is not None and idle and not self.flow.write_paused:  # (answers read)
                self._refused, self._reason, self._answer = path, reason, self._refuse
                return
            super().on_headers_complete()
            if admit and self.cycle is not None and self.cycle.scope is self.scope:
                # A task will run it: its slot is taken now, not when the task first runs,
                # so a burst read in one loop turn cannot admit more than the limit.
                gate.admit(self.scope)  # type: ignore[arg-type]  # a TypedDict

        def connection_lost(self, exc: Exception | None) -> None:
            for cycle, _ in self.pipeline:  # admitted, queued behind another, never to run
                gate.release(cycle.scope)  # type: ignore[arg-type]  # a TypedDict
            super().connection_lost(exc)

        def timeout_keep_alive_handler(self) -> None:
            if not self.transport.is_closing() and _has_input(self.transport):
                # Not idle: a request came while the loop was late; read it, time out later.
                self.timeout_keep_alive_task = self.loop.call_later(
                    self.timeout_keep_alive, self.timeout_keep_alive_handler
                )
                return
            super().timeout_keep_alive_handler()

        def on_body(self, body: bytes) -> None:
            if self._answer is None:
                super().on_body(body)
            elif self._body is not None:
                self._body.append(body)

        def on_message_complete(self) -> None:
            answer = self._answer
            if answer is None:
                super().on_message_complete()
                return
            self._answer = None
            answer()

        def _refuse(self) -> None:
            """Answer the request refused when its headers were read: 503, ``Retry-After``."""
            path = self._refused
            request_id = os.urandom(8).hex()
            body, headers = gate.refusal(request_id)
            head = b"".join(b"%s: %s\r\n" % pair for pair in headers)
            keep = self.parser.should_keep_alive()
            self.transport.write(
                b"HTTP/1.1 503 Service Unavailable\r\n%s%s: %s\r\n%s\r\n%s"
                % (
                    head,
                    REQUEST_ID_HEADER,
                    request_id.encode(),
                    b"" if keep else b"connection: close\r\n",
                    body,
                )
            )
            gate.count_shed(self._reason)
            counters[path].inc()
            if not keep:
                self.transport.close()
                return
            self.on_response_complete()

    return SheddingProtocol


__all__ = ["shedding_protocol"]
