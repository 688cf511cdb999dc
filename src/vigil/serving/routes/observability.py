"""``/metrics``: Prometheus exposition of this process's registry."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from vigil.inference.manager import ModelSnapshot
from vigil.monitoring import CONTENT_TYPE_LATEST, VigilMetrics

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
        show_models(services.metrics, services.models.snapshot())
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


def show_models(metrics: VigilMetrics, models: ModelSnapshot) -> None:
    """``vigil_model_info`` as the process serves now, however its models changed (an admin
    route, a deploy, or a deployment followed from another process)."""
    champion = models.champion.metadata
    metrics.set_model("champion", champion.model_version, champion.model_kind)
    if models.challenger is None:
        metrics.clear_model("challenger")
    else:
        challenger = models.challenger.metadata
        metrics.set_model("challenger", challenger.model_version, challenger.model_kind)
