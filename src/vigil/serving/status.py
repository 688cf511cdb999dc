"""Readiness: is every dependency of the scoring path up?"""

from __future__ import annotations

import asyncio
import logging

from vigil.serving.deps import Services
from vigil.serving.schemas import HealthOut

log = logging.getLogger(__name__)

PING_TIMEOUT_S = 2.0  # a store that answers slower than this is not ready to score


async def _state_store_reachable(services: Services) -> bool:
    """Whether the state store answers a ping (the in-process one always does)."""
    try:
        return await asyncio.wait_for(services.store.aping(), PING_TIMEOUT_S)
    except Exception as error:  # any client error means "not reachable" for readiness
        log.warning("state store unreachable: %s", error)
        return False


async def readiness(services: Services | None) -> HealthOut:
    """Each check's outcome and the serving model version; ``ready`` only if all pass."""
    if services is None:
        checks = {"model": False, "database": False, "state_store": False}
        return HealthOut(status="unavailable", checks=checks, model_version=None)
    champion = services.models.snapshot().champion
    checks = {
        "model": champion is not None,
        "database": services.writer.healthy,
        "state_store": await _state_store_reachable(services),
    }
    return HealthOut(
        status="ready" if all(checks.values()) else "unavailable",
        checks=checks,
        model_version=champion.metadata.model_version if champion is not None else None,
    )
