"""HTTP routes, one module per concern; each route parses, calls one function, answers."""

from fastapi import APIRouter

from vigil.serving.routes import (
    admin,
    cases,
    evaluate,
    health,
    lifecycle,
    metadata,
    observability,
    scoring,
)

ROUTERS: tuple[APIRouter, ...] = (
    scoring.router,
    evaluate.router,
    health.router,
    metadata.router,
    observability.router,
    admin.router,
    lifecycle.router,
    cases.router,
)

__all__ = ["ROUTERS"]
