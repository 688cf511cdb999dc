"""The app factory: settings in, a FastAPI app out; nothing is loaded until start-up."""

from __future__ import annotations

from fastapi import FastAPI

import vigil
from vigil.config import Settings
from vigil.features import StateStore
from vigil.inference.manager import ModelManager
from vigil.monitoring import create_metrics
from vigil.serving.errors import install_error_handlers
from vigil.serving.hotpath import HotRoutes
from vigil.serving.lifespan import lifespan_for
from vigil.serving.middleware import ServiceMiddleware
from vigil.serving.routes import ROUTERS
from vigil.storage import GroupCommitWriter

DESCRIPTION = """Real-time card-fraud scoring.

* `POST /predict` scores one payment with online features and stores the decision durably
  before answering.
* `POST /forward` is the model alone (classic contract: `400 bad request`,
  `403 модель не смогла обработать данные`).
* Admin routes need the `X-API-Key` header. Every answer carries an `X-Request-ID`.
"""


def create_app(
    settings: Settings,
    *,
    model_manager: ModelManager | None = None,
    state_store: StateStore | None = None,
    writer: GroupCommitWriter | None = None,
) -> FastAPI:
    """Build the API; model, state store and writer are built at start-up unless injected."""
    metrics = create_metrics()
    app = FastAPI(
        title="Vigil fraud-scoring API",
        version=vigil.__version__,
        description=DESCRIPTION,
        lifespan=lifespan_for(settings, metrics, model_manager, state_store, writer),
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.services = None
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(HotRoutes)  # inside ServiceMiddleware: ids, limits, metrics apply
    app.add_middleware(
        ServiceMiddleware, metrics=metrics, max_body_bytes=settings.serving.max_upload_bytes
    )
    return app
