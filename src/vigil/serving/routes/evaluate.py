"""``/evaluate``: a labelled CSV upload scored and measured with the training metric code."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import TypeAdapter
from starlette.concurrency import run_in_threadpool

from vigil.serving.deps import get_prediction_service
from vigil.serving.routes.scoring import json_response
from vigil.serving.schemas import (
    ErrorOut,
    EvaluateOut,
    LabelledTransaction,
    decision_body,
    request_body_schema,
)
from vigil.serving.uploads import read_batch

router = APIRouter(tags=["evaluation"])

_LABELLED = TypeAdapter(list[LabelledTransaction])


@router.post(
    "/evaluate",
    response_model=EvaluateOut,
    responses={
        400: {"model": ErrorOut, "description": "Unreadable upload."},
        413: {"model": ErrorOut},
        415: {"model": ErrorOut},
        422: {"description": "Invalid row; the error names the row index and field."},
    },
    openapi_extra=request_body_schema(LabelledTransaction, csv=True, json=False),
    summary="Evaluate the serving model on a labelled CSV (AUC ROC, AP, precision, recall, CP@k)",
)
async def evaluate(request: Request) -> Response:
    """Predictions for every row plus metrics; nothing is stored."""
    service = get_prediction_service(request)
    limit = request.app.state.settings.serving.max_batch_rows
    transactions = await read_batch(request, _LABELLED, limit, allow_json=False)
    result = await run_in_threadpool(service.evaluate, transactions)
    return json_response(
        {
            "model_version": result.model_version,
            "metrics": result.metrics,
            "predictions": [decision_body(d) for d in result.decisions],
        }
    )
