"""Domain errors become HTTP errors here, and only here; no stack trace ever leaves.

Error shapes: JSON routes answer ``{"detail": str, "request_id": str}``, and invalid input
``422 {"detail": [{"type", "loc", "msg", "input"?}], "request_id"}``; ``/forward`` keeps its
classic plain-text ``400 bad request`` and ``403`` (``serving/hotpath.py``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from vigil.cases import CaseNotFound
from vigil.data.training_data import RejectedData
from vigil.decisions.idempotency import TransactionConflict
from vigil.decisions.labels import VerdictConflict, VerdictRejected
from vigil.inference.errors import (
    InvalidFeaturesError,
    ModelLoadError,
    ModelScoringError,
    NotDeployable,
)
from vigil.retraining.errors import ExperimentNotFound, RetrainInProgress
from vigil.serving.context import request_id_var
from vigil.storage.errors import (
    DatabaseUnavailable,
    RecordRejected,
    WriterClosed,
    WriterOverloaded,
)

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = "1"


class ServiceError(Exception):
    """An error with an HTTP status and a message that is safe to show the caller."""

    status_code = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class PayloadTooLarge(ServiceError):
    """The request body or the batch is larger than the configured limit."""

    status_code = 413

    def __init__(self, limit: int, what: str = "request body", unit: str = "bytes") -> None:
        super().__init__(f"{what} exceeds the limit of {limit} {unit}")


class BadUpload(ServiceError):
    """An upload that cannot be read as the expected CSV or JSON."""

    status_code = 400


class NotReady(ServiceError):
    """A dependency (model, database, state store) is not available yet."""

    status_code = 503


def json_error(status_code: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    """A JSON error body carrying the request id (when inside a request)."""
    body = orjson.dumps({"detail": detail, "request_id": request_id_var.get()})
    return Response(body, status_code, headers=headers, media_type="application/json")


_MAX_ECHOED = 200


def _echoable(value: object) -> bool:
    """Whether an invalid input can be shown back as plain JSON (short, finite, valid text)."""
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -(2**63) <= value < 2**64
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return len(value) <= _MAX_ECHOED and value.isprintable()
    return False


def validation_problems(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Pydantic problems as JSON-safe dicts: location, message, type, and the input if safe.

    NaN, infinities, huge integers, bytes or binary text from the request are not echoed, so
    encoding the answer can never fail.
    """
    problems = []
    for error in errors:
        problem = {
            "type": str(error.get("type", "value_error")),
            "loc": [part if isinstance(part, int) else str(part) for part in error.get("loc", ())],
            "msg": str(error.get("msg", "invalid value")),
        }
        if _echoable(error.get("input")) and "input" in error:
            problem["input"] = error["input"]
        problems.append(problem)
    return problems


async def _invalid_request(_request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    body = orjson.dumps(
        {"detail": validation_problems(error.errors()), "request_id": request_id_var.get()}
    )
    return Response(body, 422, media_type="application/json")


async def _service_error(_request: Request, error: Exception) -> Response:
    assert isinstance(error, ServiceError)
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if error.status_code == 503 else None
    return json_error(error.status_code, error.detail, headers)


async def _overloaded(_request: Request, _error: Exception) -> Response:
    log.warning("database writer queue full; pushing back with 503")
    return json_error(503, "service overloaded, retry later", {"Retry-After": RETRY_AFTER_SECONDS})


async def _database_unavailable(_request: Request, error: Exception) -> Response:
    log.error("database unavailable: %s", error)
    return json_error(503, "database unavailable", {"Retry-After": RETRY_AFTER_SECONDS})


async def _record_rejected(_request: Request, error: Exception) -> Response:
    return json_error(422, str(error))


async def _model_failed(_request: Request, error: Exception) -> Response:
    log.warning("the model could not process the data: %s", error)
    return json_error(422, f"the model could not process the data: {error}")


def _answer(status_code: int) -> Callable[[Request, Exception], Awaitable[Response]]:
    """A handler answering ``status_code`` with the domain error's own (safe) message."""

    async def handler(_request: Request, error: Exception) -> Response:
        return json_error(status_code, str(error))

    return handler


# The model lifecycle's domain errors (retraining, deployment, training-data uploads).
LIFECYCLE_STATUS: dict[type[Exception], int] = {
    ExperimentNotFound: 404,
    RetrainInProgress: 409,
    NotDeployable: 409,
    RejectedData: 422,
    ModelLoadError: 422,  # a model handed to /admin: rejected, the serving one unchanged
    TransactionConflict: 409,  # a transaction_id reused with another payload (/predict)
}


# The case queue's domain errors (analysts' verdicts).
CASE_STATUS: dict[type[Exception], int] = {
    CaseNotFound: 404,
    VerdictConflict: 409,
}


async def _verdict_rejected(_request: Request, error: Exception) -> Response:
    """A verdict that does not fit its case: shaped like any invalid body (422)."""
    assert isinstance(error, VerdictRejected)
    problem = {"type": "value_error", "loc": ["body", error.field], "msg": str(error)}
    body = orjson.dumps({"detail": [problem], "request_id": request_id_var.get()})
    return Response(body, 422, media_type="application/json")


async def _state_store_unavailable(_request: Request, error: Exception) -> Response:
    log.error("state store unavailable: %s", error)
    return json_error(503, "state store unavailable", {"Retry-After": RETRY_AFTER_SECONDS})


def install_error_handlers(app: FastAPI) -> None:
    """Map domain errors to status codes (unexpected ones: see ``ServiceMiddleware``)."""
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(WriterOverloaded, _overloaded)
    app.add_exception_handler(DatabaseUnavailable, _database_unavailable)
    app.add_exception_handler(WriterClosed, _database_unavailable)
    app.add_exception_handler(RecordRejected, _record_rejected)
    app.add_exception_handler(InvalidFeaturesError, _model_failed)
    app.add_exception_handler(ModelScoringError, _model_failed)
    app.add_exception_handler(VerdictRejected, _verdict_rejected)
    app.add_exception_handler(RedisConnectionError, _state_store_unavailable)
    app.add_exception_handler(RedisTimeoutError, _state_store_unavailable)
    for error, status_code in {**LIFECYCLE_STATUS, **CASE_STATUS}.items():
        app.add_exception_handler(error, _answer(status_code))
