"""Readiness: is every dependency of the scoring path up?"""

from __future__ import annotations

import logging

from vigil.serving.deps import Services
from vigil.serving.schemas import HealthOut

log = logging.getLogger(__name__)


async def _state_store_reachable(services: Services) -> bool:
    """Stores that can be unreachable (Redis) expose ``aping``; the in-process one cannot fail."""
    ping = getattr(services.store, "aping", None)
    if ping is None:
        return True
    try:
        await ping()
    except Exception as error:
        log.warning("state store unreachable: %s", error)
        return False
    return True


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
