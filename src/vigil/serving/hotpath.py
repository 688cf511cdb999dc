"""``POST /predict`` and ``POST /forward`` as raw ASGI, ahead of FastAPI's request machinery.

At thousands of requests per second on one core, FastAPI's and Starlette's per-request layers
(exception middlewares, router, ``Request``/``Response`` objects) cost more CPU than scoring.
:class:`HotRoutes` answers the two hot routes directly with pre-built headers; everything else,
and the OpenAPI documentation of these two routes, stays with FastAPI. Errors still go through
the app's exception handlers, so every status code and body is the same as on any other route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from vigil.decisions import Replayed
from vigil.decisions.offline import ForwardOutcome
from vigil.inference.decision import Decision
from vigil.inference.errors import InvalidFeaturesError, ModelScoringError
from vigil.serving.deps import Services
from vigil.serving.errors import NotReady
from vigil.serving.schemas import ForwardRequest, Transaction, decision_body, replayed_body
from vigil.serving.uploads import JSON, validation_error

BAD_REQUEST = "bad request"
MODEL_FAILED = "модель не смогла обработать данные"
JSON_TYPE = JSON.encode()
BAD_REQUEST_BODY = BAD_REQUEST.encode()
MODEL_FAILED_BODY = MODEL_FAILED.encode()
TEXT_TYPE = b"text/plain; charset=utf-8"

Answer = tuple[int, bytes, bytes]
"""Status, body and content type of a hot route's answer."""
ExceptionHandler = Callable[[Request, Any], Awaitable[Any]]


def ready_services(services: Services | None) -> Services:
    """The running services; 503 while starting or stopping."""
    if services is None:
        raise NotReady("service is starting or stopping")
    return services


async def predict_answer(services: Services | None, body: bytes) -> Answer:
    """Validate one transaction (422 naming the field), score it, store it, answer JSON."""
    running = ready_services(services)
    try:
        transaction = Transaction.model_validate_json(body, context=running.event_time)
    except ValidationError as error:
        raise validation_error(error) from None
    decision = await running.predictions.predict(transaction)
    if isinstance(decision, Replayed):  # a repeated transaction_id: the stored decision
        return 200, orjson.dumps(replayed_body(decision)), JSON_TYPE
    return 200, orjson.dumps(decision_body(decision)), JSON_TYPE


def forward_answer(services: Services | None, content_type: str, body: bytes) -> Answer:
    """The classic contract for one request (:func:`forward_answers`)."""
    return forward_answers(services, [(content_type, body)])[0]


def forward_answers(
    services: Services | None, requests: Sequence[tuple[str, bytes]]
) -> list[Answer]:
    """The classic contract per ``(content type, body)``: 400 ``bad request``, 403 when the
    model fails, else the decision's JSON; the feature values of all of them in one model run.

    A body is either feature values (``{"features": ...}``, :class:`ForwardRequest`) or a
    transaction in ``/predict``'s shape, whose features are computed from the transaction
    alone (nothing is read from or written to the online state; ``/predict`` does that).
    """
    parsed = [_forward_request(services, kind, body) for kind, body in requests]
    by_features = [request for request in parsed if isinstance(request, ForwardRequest)]
    outcomes = iter(
        ready_services(services).predictions.forward(by_features) if by_features else []
    )
    answers: list[Answer] = []
    for request in parsed:
        if request is None:
            answers.append((400, BAD_REQUEST_BODY, TEXT_TYPE))
        elif isinstance(request, ForwardRequest):
            answers.append(_decision_answer(next(outcomes)))
        else:
            answers.append(_transaction_answer(ready_services(services), request))
    return answers


def _forward_request(
    services: Services | None, content_type: str, body: bytes
) -> ForwardRequest | Transaction | None:
    """The request a /forward body holds; None when it is a bad request."""
    if content_type != JSON:
        return None
    try:
        payload = orjson.loads(body)
        if isinstance(payload, dict) and "features" in payload:
            return ForwardRequest.model_validate(payload)
        return Transaction.model_validate(payload, context=ready_services(services).event_time)
    except (orjson.JSONDecodeError, ValidationError):
        return None


def _decision_answer(outcome: ForwardOutcome) -> Answer:
    if isinstance(outcome, Decision):
        return 200, orjson.dumps(decision_body(outcome)), JSON_TYPE
    return 403, MODEL_FAILED_BODY, TEXT_TYPE


def _transaction_answer(services: Services, transaction: Transaction) -> Answer:
    try:
        (decision,) = services.predictions.score_batch([transaction])
    except (InvalidFeaturesError, ModelScoringError) as error:
        return _decision_answer(error)
    return _decision_answer(decision)


def content_type(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The request's content type without parameters, lower-cased ('' when absent)."""
    for name, value in headers:
        if name == b"content-type":
            return value.decode("latin-1").split(";", 1)[0].strip().lower()
    return ""


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _handler_for(
    handlers: dict[type[Exception] | int, ExceptionHandler], error: Exception
) -> ExceptionHandler | None:
    """The app's exception handler for ``error``'s class or its nearest base."""
    for cls in type(error).__mro__:
        handler = handlers.get(cls)
        if handler is not None:
            return handler
    return None


class HotRoutes:
    """Answers ``POST /predict`` and ``POST /forward``; hands every other request to ``app``."""

    PATHS = frozenset({"/predict", "/forward"})

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    @classmethod
    def handles(cls, scope: Scope) -> bool:
        """Whether ``scope`` is a request for one of the hot routes."""
        return scope["type"] == "http" and scope["path"] in cls.PATHS and scope["method"] == "POST"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route one ASGI call."""
        if not self.handles(scope):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        scope["endpoint"] = self  # the request metrics label plain routes by their path
        app = scope["app"]  # the FastAPI app: its running services and exception handlers
        services = getattr(app.state, "services", None)
        try:
            body = await _read_body(receive)
            if path == "/predict":
                status, content, media = await predict_answer(services, body)
            else:
                kind = content_type(scope["headers"])
                status, content, media = forward_answer(services, kind, body)
        except Exception as error:
            handler = _handler_for(app.exception_handlers, error)
            if handler is None:
                raise  # the service middleware logs it and answers a generic 500
            response = await handler(Request(scope, receive), error)
            await response(scope, receive, send)
            return
        headers = [(b"content-type", media), (b"content-length", b"%d" % len(content))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})
