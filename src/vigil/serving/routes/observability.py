"""``/metrics``: Prometheus exposition of this process's registry."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from vigil.monitoring import CONTENT_TYPE_LATEST
from vigil.serving.status import state_warm

router = APIRouter(tags=["operations"])

_EXAMPLE = (
    "# TYPE vigil_http_requests_total counter\n"
    'vigil_http_requests_total{route="/predict",status="200"} 1024.0\n'
)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"example": _EXAMPLE}}}},
    summary="Prometheus metrics: requests, latency, scores, decisions, model, storage",
)
async def metrics(request: Request) -> Response:
    """The text exposition format, for Prometheus to scrape."""
    request.app.state.marts.refresh()
    services = getattr(request.app.state, "services", None)
    if services is not None:
        # however the models changed: a route, a deploy, or one followed from another process
        services.metrics.show_models(services.models.snapshot())
        await state_warm(services)  # vigil_state_store_warm, read at every scrape
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
