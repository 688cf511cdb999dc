"""``/health``: liveness and readiness in one answer (503 until every dependency is ready)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from vigil.serving.routes.scoring import json_response
from vigil.serving.schemas import HealthOut
from vigil.serving.status import readiness

router = APIRouter(tags=["operations"])


@router.get(
    "/health",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "Alive but not ready."}},
    summary="Liveness and readiness: model loaded, database writer healthy, state store up",
)
async def health(request: Request) -> Response:
    """200 when ready (or degraded: scoring, with a cold state store), 503 (same body) when a
    dependency is missing or down."""
    report = await readiness(getattr(request.app.state, "services", None))
    response = json_response(report.model_dump())
    response.status_code = 503 if report.status == "unavailable" else 200
    return response
