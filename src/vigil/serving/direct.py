"""``POST /forward`` answered inside the HTTP protocol: no ASGI call, one write per answer.

``/forward`` (the model alone) is synchronous: once the body is read, nothing it does awaits.
Through ASGI it still pays uvicorn's per-request machinery (a task, a request-response cycle,
an event, the scope, two ``send`` calls that each validate headers and write to the socket)
and the app's three ASGI layers, which together cost more CPU than scoring. Under ``vigil
serve`` (one process) this ``httptools`` protocol therefore answers a plain ``/forward``
request itself, as soon as its body has arrived: :func:`~vigil.serving.hotpath.forward_answer`
(the same function the ASGI route calls, so the same decisions, 400 and 403 bodies), with the
same request id, metrics and generic 500 as :class:`~vigil.serving.middleware.ServiceMiddleware`,
headers and body in one socket write.

Everything else takes uvicorn's normal path, which answers it the same way: other routes,
and a ``/forward`` request that is not plain (no ``Content-Length`` or one over the upload
limit, ``Expect: 100-continue``, a pipelined request behind an unanswered one, a service
still starting), or arrives while the admission gate refuses (then it is shed, 503).
"""

from __future__ import annotations

import logging
import time

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from vigil.serving.admission import AdmissionGate
from vigil.serving.app import VigilAPI
from vigil.serving.context import request_id_var
from vigil.serving.hotpath import JSON_TYPE, Answer, content_type, forward_answer
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


def direct_protocol(app: VigilAPI) -> type[HttpToolsProtocol]:
    """``app``'s shedding protocol (:mod:`~vigil.serving.shedding`), answering plain
    ``POST /forward`` requests itself with ``app``'s services, request ids and metrics."""
    state = app.state
    gate: AdmissionGate = state.admission
    service = app.hot
    max_body_bytes = state.settings.serving.max_upload_bytes

    class DirectProtocol(shedding_protocol(gate, service.metrics)):  # type: ignore[misc]
        _direct: list[bytes] | None = None  # the body so far of a request answered here

        def on_headers_complete(self) -> None:
            if self._plain_forward():
                self._direct = []
                return
            super().on_headers_complete()

        def _plain_forward(self) -> bool:
            if self.url != _FORWARD or gate.overloaded or state.services is None:
                return False
            if self.cycle is not None and not self.cycle.response_complete:
                return False  # pipelined behind an unanswered request: keep the order
            length = content_length(self.headers)
            return (
                length is not None
                and length <= max_body_bytes
                and not self.expect_100_continue
                and self.parser.get_method() == b"POST"
                and not self.parser.should_upgrade()
            )

        def on_body(self, body: bytes) -> None:
            if self._direct is None:
                super().on_body(body)
            else:
                self._direct.append(body)

        def on_message_complete(self) -> None:
            chunks = self._direct
            if chunks is None:
                super().on_message_complete()
                return
            self._direct = None
            started = time.perf_counter()
            request_id = service.request_id(self.headers)
            status, content, media = self._answer(b"".join(chunks), request_id)
            keep_alive = self.parser.should_keep_alive() and self.parser.get_http_version() != "1.0"
            head = [STATUS_LINE[status]]
            for name, value in self.server_state.default_headers:  # date, server
                head += (name, b": ", value, b"\r\n")
            head += (
                b"content-type: ", media, b"\r\ncontent-length: %d\r\n" % len(content),
                REQUEST_ID_HEADER, b": ", request_id,
                b"\r\n\r\n" if keep_alive else b"\r\nconnection: close\r\n\r\n", content,
            )  # fmt: skip
            self.transport.write(b"".join(head))
            service.record(FORWARD, status, time.perf_counter() - started)
            if not keep_alive:
                self.transport.close()
            self.on_response_complete()

        def _answer(self, body: bytes, request_id: bytes) -> Answer:
            token = request_id_var.set(request_id.decode())
            try:
                return forward_answer(state.services, content_type(self.headers), body)
            except Exception:
                # As ServiceMiddleware: logged with the request id, a 500 that reveals nothing.
                log.exception("unhandled error on POST %s", FORWARD)
                return 500, error_body(INTERNAL_ERROR, request_id), JSON_TYPE
            finally:
                request_id_var.reset(token)

    return DirectProtocol
