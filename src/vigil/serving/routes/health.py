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
    """200 when ready to score, 503 (same body) when a dependency is missing or down."""
    report = await readiness(getattr(request.app.state, "services", None))
    response = json_response(report.model_dump())
    response.status_code = 200 if report.status == "ready" else 503
    return response
