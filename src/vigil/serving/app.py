"""The app factory: settings in, a FastAPI app out; nothing is loaded until start-up."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import FastAPI
from starlette.datastructures import State
from starlette.types import Receive, Scope, Send

import vigil
from vigil.config import Settings
from vigil.features import StateStore
from vigil.inference.manager import ModelManager
from vigil.monitoring import create_metrics
from vigil.monitoring.mart_metrics import MartMetrics
from vigil.serving.admission import ARRIVED, AdmissionGate
from vigil.serving.docs import install_docs
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


class AppState(State):
    """``app.state`` whose entries are the instance's own attributes.

    Starlette's :class:`State` keeps them in a dict that its ``__getattr__`` reads, and Python
    calls ``__getattr__`` only after the normal look-up has failed: every read (the running
    services and the admission gate, on each scoring request) first made and discarded an
    ``AttributeError``. Here that dict is the instance's ``__dict__``, so a read is a plain
    attribute look-up; writes, deletes and item access stay State's.
    """

    def __init__(self) -> None:
        super().__init__(self.__dict__)

    def __iter__(self) -> Iterator[str]:
        return (key for key in self._state if key != "_state")

    def __len__(self) -> int:
        return len(self._state) - 1


class VigilAPI(FastAPI):
    """FastAPI whose two hot routes are answered before its own middleware stack runs.

    FastAPI's and Starlette's layers (error and telemetry middlewares, router, request and
    response objects) cost more CPU per request than scoring does; ``hot`` (the service
    middleware around :class:`HotRoutes`) answers ``POST /predict`` and ``POST /forward``
    with the same request ids, limits, metrics and exception handlers.
    """

    hot: ServiceMiddleware

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hot routes straight to ``hot``; everything else through FastAPI."""
        if HotRoutes.handles(scope):
            scope["app"] = self
            try:
                await self.hot(scope, receive, send)
            finally:  # a slot the server took for a request answered before the gate (413)
                if ARRIVED in scope:
                    self.state.admission.release(scope)
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings,
    *,
    model_manager: ModelManager | None = None,
    state_store: StateStore | None = None,
    writer: GroupCommitWriter | None = None,
) -> VigilAPI:
    """Build the API; model, state store and writer are built at start-up unless injected."""
    metrics = create_metrics()
    app = VigilAPI(
        title="Vigil fraud-scoring API",
        version=vigil.__version__,
        description=DESCRIPTION,
        docs_url=None,  # install_docs: the same pages with assets served locally
        redoc_url=None,
        lifespan=lifespan_for(settings, metrics, model_manager, state_store, writer),
    )
    app.state = AppState()
    app.state.settings = settings
    app.state.metrics = metrics
    # Drift and business figures come from the pipelines' marts (ADR 0007), before any scrape.
    app.state.marts = MartMetrics(metrics, settings.monitoring.marts_dir)
    app.state.marts.refresh()
    app.state.services = None
    install_error_handlers(app)
    install_docs(app)
    for router in ROUTERS:
        app.include_router(router)
    limit = settings.serving.max_upload_bytes
    app.add_middleware(ServiceMiddleware, metrics=metrics, max_body_bytes=limit)
    gate = AdmissionGate(HotRoutes(app), settings.serving, metrics)
    app.state.admission = gate
    app.hot = ServiceMiddleware(gate, metrics=metrics, max_body_bytes=limit)
    return app
