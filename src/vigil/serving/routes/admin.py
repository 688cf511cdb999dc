"""Admin routes (API key): hot-swap the champion, set or clear the shadow challenger.

``/admin/reload`` swaps this process's champion only (``POST /deploy`` reaches every
process); ``/admin/challenger`` also records a ``challenger`` deployment, which the other API
processes and the stream workers follow (``inference/follower.py``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter

from vigil.inference.follower import CHALLENGER, NO_CHALLENGER
from vigil.serving.deps import LifecycleDep, ServicesDep
from vigil.serving.schemas import (
    UNREADABLE_BODY,
    ChallengerRequest,
    ErrorOut,
    ReloadOut,
    ReloadRequest,
)
from vigil.serving.security import ApiKeyDep
from vigil.storage import save_deployment

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[ApiKeyDep])

_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut, "description": "Missing X-API-Key."},
    403: {"model": ErrorOut, "description": "Wrong X-API-Key."},
    **UNREADABLE_BODY,
    422: {
        "description": "Model rejected (detail: the reason), the serving one unchanged; or an "
        "invalid body (detail: the problems, each naming the field)."
    },
}


@router.post(
    "/reload",
    response_model=ReloadOut,
    responses=_RESPONSES,
    summary="Hot-swap the champion model: no restart, no failed request",
)
async def reload(body: ReloadRequest, services: ServicesDep) -> ReloadOut:
    """Load and warm ``model_path`` in a thread beside the serving model, then swap atomically."""
    # A ModelLoadError is a 422 (serving/errors.py): the serving model stays.
    previous = await asyncio.to_thread(services.models.deploy, Path(body.model_path))
    current = services.models.snapshot().champion.metadata
    return ReloadOut(
        model_version=current.model_version,
        previous_version=previous.champion.metadata.model_version,
    )


@router.post(
    "/challenger",
    response_model=ReloadOut,
    responses=_RESPONSES,
    summary="Set (or clear with null) the challenger scored in shadow on /predict and the stream",
)
async def challenger(
    body: ChallengerRequest, services: ServicesDep, lifecycle: LifecycleDep
) -> ReloadOut:
    """The challenger's scores are stored beside the champion's; answers never depend on it.

    Every API process and stream worker follows (the ``deployments`` table).
    """
    path = Path(body.model_path).resolve() if body.model_path is not None else None
    previous = await asyncio.to_thread(services.models.set_challenger, path)
    current = services.models.snapshot().challenger
    version = current.metadata.model_version if current is not None else NO_CHALLENGER
    await asyncio.to_thread(
        save_deployment,
        lifecycle.engine,
        version,
        str(path) if current else NO_CHALLENGER,
        CHALLENGER,
    )
    return ReloadOut(
        model_version=current.metadata.model_version if current is not None else None,
        previous_version=(
            previous.challenger.metadata.model_version if previous.challenger else None
        ),
    )
