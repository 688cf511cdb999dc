"""``/predict`` (the hot path), ``/forward`` (model only, classic contract), ``/forward_batch``."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import TypeAdapter
from starlette.concurrency import run_in_threadpool

from vigil.serving.deps import Services, get_prediction_service
from vigil.serving.hotpath import MODEL_FAILED, Answer, forward_answer, predict_answer
from vigil.serving.schemas import (
    BatchOut,
    DecisionOut,
    ErrorOut,
    ForwardRequest,
    Transaction,
    decision_body,
    request_body_schema,
)
from vigil.serving.uploads import JSON, media_type, read_batch

router = APIRouter(tags=["scoring"])

_BATCH = TypeAdapter(list[Transaction])
_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorOut},
    503: {"model": ErrorOut, "description": "Retry later."},
}


def json_response(content: object) -> Response:
    """orjson-encoded JSON (several times faster than the default encoder)."""
    return Response(orjson.dumps(content), media_type=JSON)


@router.post(
    "/predict",
    response_model=DecisionOut,
    responses={
        409: {
            "model": ErrorOut,
            "description": "The transaction_id is already stored with a different payload "
            "(tx_datetime, customer_id, terminal_id or tx_amount); the stored decision is "
            "unchanged. A repeat with the same payload is answered 200 with the stored "
            "decision (same score, label and model version; reason contributions null).",
        },
        422: {"description": "Invalid transaction; the error names the field."},
        **_ERRORS,
    },
    openapi_extra=request_body_schema(Transaction),
    summary="Score one transaction (online features, persisted before the answer)",
)
async def predict(request: Request) -> Response:
    """Decide on one payment; the prediction is durably stored before this returns.

    Served by :class:`~vigil.serving.hotpath.HotRoutes`; this route documents it.
    """
    return _answer(await predict_answer(_services(request), await request.body()))


@router.post(
    "/forward",
    response_model=DecisionOut,
    responses={
        400: {"description": "Malformed or wrong-format request: body `bad request`."},
        403: {"description": f"The model could not process the data: body `{MODEL_FAILED}`."},
        413: {"model": ErrorOut},
    },
    openapi_extra=request_body_schema(ForwardRequest, alternative=Transaction),
    summary="Model only: score a transaction or precomputed features (classic contract)",
)
async def forward(request: Request) -> Response:
    """Score a transaction (``/predict``'s shape; features from the transaction alone, nothing
    stored) or feature values; 400 ``bad request`` for bad input, 403 when the model fails.

    Served by :class:`~vigil.serving.hotpath.HotRoutes`; this route documents it.
    """
    body = await request.body()
    return _answer(forward_answer(_services(request), media_type(request), body))


@router.post(
    "/forward_batch",
    response_model=BatchOut,
    responses={
        400: {"model": ErrorOut, "description": "Unreadable upload."},
        415: {"model": ErrorOut},
        422: {"description": "Invalid row; the error names the row index and field."},
        **_ERRORS,
    },
    openapi_extra=request_body_schema(Transaction, array=True, csv=True),
    summary="Score many transactions (JSON array or CSV upload); results in input order",
)
async def forward_batch(request: Request) -> Response:
    """Features over the batch itself; nothing is stored and online state is not touched."""
    service = get_prediction_service(request)
    limit = request.app.state.settings.serving.max_batch_rows
    transactions = await read_batch(request, _BATCH, limit, allow_json=True)
    decisions = await run_in_threadpool(service.score_batch, transactions)
    return json_response({"results": [decision_body(d) for d in decisions]})


def _services(request: Request) -> Services | None:
    return getattr(request.app.state, "services", None)


def _answer(answer: Answer) -> Response:
    status, body, content_type = answer
    return Response(body, status, media_type=content_type.decode())
