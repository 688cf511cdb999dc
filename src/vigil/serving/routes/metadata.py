"""``/metadata``: what the serving model files say about themselves."""

from __future__ import annotations

from fastapi import APIRouter

from vigil.serving.deps import ServicesDep
from vigil.serving.schemas import MetadataOut

router = APIRouter(tags=["model"])


@router.get(
    "/metadata",
    response_model=MetadataOut,
    summary="ONNX metadata: version, git commit, saved-at, experiment, features, threshold",
)
async def metadata(services: ServicesDep) -> MetadataOut:
    """Champion metadata, and the challenger's when one runs in shadow."""
    models = services.models.snapshot()
    challenger = models.challenger
    return MetadataOut(
        champion=models.champion.metadata,
        challenger=challenger.metadata if challenger is not None else None,
    )
