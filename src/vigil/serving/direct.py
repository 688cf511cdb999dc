"""``POST /forward`` answered inside the HTTP protocol: no ASGI call, a batch per loop turn.

``/forward`` (the model alone) is synchronous: once the body is read, nothing it does awaits.
Through ASGI it still pays uvicorn's per-request machinery (a task, a request-response cycle,
an event, the scope, two ``send`` calls that each validate headers and write to the socket)
and the app's three ASGI layers, which together cost more CPU than scoring. Under ``vigil
serve`` (one process) this ``httptools`` protocol therefore takes a plain ``/forward``
request itself once its body has arrived, and answers every request taken in one event-loop
turn together, right after that turn's reads: one call of
:func:`~vigil.serving.hotpath.forward_answers` (the function the ASGI route calls for one
request: the same decisions, 400 and 403 bodies), so their feature values are scored in one
model run, as TorchServe's, BentoML's and Triton's batchers do; each answer then goes out in
one socket write with the same request id, metrics and generic 500 as
:class:`~vigil.serving.middleware.ServiceMiddleware`.

Everything else takes uvicorn's normal path, which answers it the same way: other routes,
and a ``/forward`` request that is not plain (no ``Content-Length`` or one over the upload
limit, ``Expect: 100-continue``, a pipelined request behind an unanswered one, a service
still starting, a connection whose client reads no answers: its write buffer full, so that
uvicorn stops reading it), or arrives while the admission gate refuses (then it is shed,
503). A batch that raises an unexpected error is answered request by request. A
request taken here never waits for I/O, so it takes no admission slot.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from vigil.serving.admission import AdmissionGate
from vigil.serving.app import VigilAPI
from vigil.serving.deps import Services
from vigil.serving.hotpath import JSON_TYPE, Answer, content_type, forward_answers
from vigil.serving.middleware import (
    INTERNAL_ERROR,
    REQUEST_ID_HEADER,
    content_length,
    error_body,
)
from vigil.serving.shedding import shedding_protocol

FORWARD = "/forward"
_FORWARD = FORWARD.encode()

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Pending:
    """A plain /forward request read completely, to be answered at the end of the loop turn."""

    protocol: Any  # the connection's DirectProtocol
    services: Services  # the app's, as its headers were read (kept if the app stops meanwhile)
    started: float
    request_id: bytes
    content_type: str
    body: bytes
    keep_alive: bool


def direct_protocol(app: VigilAPI) -> type[HttpToolsProtocol]:
    """``app``'s shedding protocol (:mod:`~vigil.serving.shedding`), answering plain
    ``POST /forward`` requests itself with ``app``'s services, request ids and metrics."""
    state = app.state
    gate: AdmissionGate = state.admission
    service = app.hot
    max_body_bytes = state.settings.serving.max_upload_bytes

    class DirectProtocol(shedding_protocol(gate, service.metrics)):  # type: ignore[misc]
        _answer: Callable[[], None] | None  # the shedding protocol's
        _body: list[bytes] | None

        def on_headers_complete(self) -> None:
            if self.url == _FORWARD and self._plain_forward():
                # Answered here (see the shedding protocol's on_body, on_message_complete):
                # with the app's services as its headers were read.
                self._answer, self._body = partial(self._take, state.services), []
                return
            super().on_headers_complete()

        def _plain_forward(self) -> bool:
            if gate.overloaded or state.services is None:
                return False
            if self.cycle is not None and not self.cycle.response_complete:
                return False  # pipelined behind an unanswered request: keep the order
            if self.flow.write_paused:
                return False  # the client reads no answers: uvicorn's path stops reading
            length = content_length(self.headers)
            return (
                length is not None
                and length <= max_body_bytes
                and not self.expect_100_continue
                and self.parser.get_method() == b"POST"
                and not self.parser.should_upgrade()
            )

        def _take(self, services: Services) -> None:
            """Queue the request read completely; :func:`answer_pending` answers it."""
            chunks, self._body = self._body or [], None
            keep_alive = self.parser.should_keep_alive() and self.parser.get_http_version() != "1.0"
            request = _Pending(
                self,
                services,
                time.perf_counter(),
                service.request_id(self.headers),
                content_type(self.headers),
                b"".join(chunks),
                keep_alive,
            )
            pending.append(request)
            if len(pending) == 1:  # the first of this loop turn: answer them all after it
                self.loop.call_soon(answer_pending)

        def respond(self, request: _Pending, answer: Answer) -> None:
            """Write ``answer`` (headers and body at once); the connection goes on or closes."""
            if self.transport.is_closing():
                return  # the client left meanwhile: nobody to answer
            status, content, media = answer
            head = [STATUS_LINE[status]]
            for name, value in self.server_state.default_headers:  # date, server
                head += (name, b": ", value, b"\r\n")
            head += (
                b"content-type: ", media, b"\r\ncontent-length: %d\r\n" % len(content),
                REQUEST_ID_HEADER, b": ", request.request_id,
                b"\r\n\r\n" if request.keep_alive else b"\r\nconnection: close\r\n\r\n",
                content,
            )  # fmt: skip
            self.transport.write(b"".join(head))
            service.record(FORWARD, status, time.perf_counter() - request.started)
            if not request.keep_alive:
                self.transport.close()
            self.on_response_complete()

    pending: list[_Pending] = []  # complete requests of this loop turn, in arrival order

    def answer_pending() -> None:
        """Answer the requests of one loop turn: their feature values in one model run."""
        batch = pending.copy()
        pending.clear()
        try:
            requests = [(r.content_type, r.body) for r in batch]
            answers = forward_answers(batch[0].services, requests)  # one app: one Services
        except Exception:  # each request alone: only the one that fails gets the 500
            answers = [answer_alone(request) for request in batch]
        for request, answer in zip(batch, answers, strict=True):
            request.protocol.respond(request, answer)

    def answer_alone(request: _Pending) -> Answer:
        """One request's answer; as ServiceMiddleware, an unexpected error is logged with the
        request id and answered with a 500 that reveals nothing."""
        try:
            return forward_answers(request.services, [(request.content_type, request.body)])[0]
        except Exception:
            ids = request.request_id.decode()
            log.exception("unhandled error on POST %s (request id %s)", FORWARD, ids)
            return 500, error_body(INTERNAL_ERROR, request.request_id), JSON_TYPE

    return DirectProtocol
