"""Admin routes (API key): hot-swap the champion, set or clear the shadow challenger."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter

from vigil.inference.errors import ModelLoadError
from vigil.serving.deps import ServicesDep
from vigil.serving.errors import ServiceError
from vigil.serving.schemas import ChallengerRequest, ErrorOut, ReloadOut, ReloadRequest
from vigil.serving.security import ApiKeyDep

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[ApiKeyDep])

_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut, "description": "Missing X-API-Key."},
    403: {"model": ErrorOut, "description": "Wrong X-API-Key."},
    422: {"model": ErrorOut, "description": "Model rejected; the serving one is unchanged."},
}


class ModelRejected(ServiceError):
    """The new model file could not be loaded or does not fit; the old one keeps serving."""

    status_code = 422


@router.post(
    "/reload",
    response_model=ReloadOut,
    responses=_RESPONSES,
    summary="Hot-swap the champion model: no restart, no failed request",
)
async def reload(body: ReloadRequest, services: ServicesDep) -> ReloadOut:
    """Load and warm ``model_path`` in a thread beside the serving model, then swap atomically."""
    try:
        previous = await asyncio.to_thread(services.models.deploy, Path(body.model_path))
    except ModelLoadError as error:
        raise ModelRejected(str(error)) from None
    current = services.models.snapshot().champion.metadata
    services.metrics.set_model("champion", current.model_version, current.model_kind)
    return ReloadOut(
        model_version=current.model_version,
        previous_version=previous.champion.metadata.model_version,
    )


@router.post(
    "/challenger",
    response_model=ReloadOut,
    responses=_RESPONSES,
    summary="Set (or clear with null) the challenger scored in shadow on /predict",
)
async def challenger(body: ChallengerRequest, services: ServicesDep) -> ReloadOut:
    """The challenger's scores are stored beside the champion's; answers never depend on it."""
    path = Path(body.model_path) if body.model_path is not None else None
    try:
        previous = await asyncio.to_thread(services.models.set_challenger, path)
    except ModelLoadError as error:
        raise ModelRejected(str(error)) from None
    current = services.models.snapshot().challenger
    if current is not None:
        meta = current.metadata
        services.metrics.set_model("challenger", meta.model_version, meta.model_kind)
    return ReloadOut(
        model_version=current.metadata.model_version if current is not None else None,
        previous_version=(
            previous.challenger.metadata.model_version if previous.challenger else None
        ),
    )
