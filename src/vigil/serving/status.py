"""Readiness: is every dependency of the scoring path up?"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

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


async def state_warm(services: Services) -> bool:
    """Whether the state store still holds its warm-up marker; also sets the gauge."""
    try:
        warm = await asyncio.wait_for(services.store.awarm(), PING_TIMEOUT_S)
    except Exception as error:  # unreachable: the state_store check says so already
        log.warning("state store warm marker unreadable: %s", error)
        warm = False
    services.metrics.state_store_warm.set(1 if warm else 0)
    if not warm:
        log.warning("state store is cold (reset, re-warm pending or running): every card is new")
    return warm


async def readiness(services: Services | None) -> HealthOut:
    """Each check's outcome and the serving model version.

    ``ready`` when all pass; ``degraded`` when only ``state_warm`` fails (the store lost its
    history, say a Redis restart without persistence: answers are valid but every card looks
    new until the automatic re-warm of :mod:`vigil.decisions.recovery`, or
    ``vigil warm-state``, sets the marker again); ``unavailable`` otherwise.
    """
    if services is None:
        checks = {"model": False, "database": False, "state_store": False, "state_warm": False}
        return HealthOut(status="unavailable", checks=checks, model_version=None)
    champion = services.models.snapshot().champion
    checks = {
        "model": champion is not None,
        "database": services.writer.healthy,
        "state_store": await _state_store_reachable(services),
    }
    checks["state_warm"] = checks["state_store"] and await state_warm(services)
    status: Literal["ready", "degraded", "unavailable"] = "ready"
    if not all(v for k, v in checks.items() if k != "state_warm"):
        status = "unavailable"
    elif not checks["state_warm"]:
        status = "degraded"
    return HealthOut(
        status=status,
        checks=checks,
        model_version=champion.metadata.model_version if champion is not None else None,
    )
