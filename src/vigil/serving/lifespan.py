"""Start-up and shut-down: migrations, the decision runtime, the database writer, lifecycle.

Objects passed to :func:`vigil.serving.create_app` are used as they are and left for the
caller to close; the ones built here are started here and closed on shut-down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from vigil.config import Settings
from vigil.decisions import Runtime
from vigil.features import StateStore
from vigil.inference.manager import ModelManager
from vigil.monitoring import VigilMetrics
from vigil.monitoring.gc_pauses import frozen_start_up
from vigil.serving.case_service import CaseService
from vigil.serving.deps import Services
from vigil.serving.model_lifecycle import LifecycleServices, running_lifecycle
from vigil.serving.service import PredictionService
from vigil.storage import GroupCommitWriter, upgrade_database

log = logging.getLogger(__name__)


async def _start_writer(settings: Settings, metrics: VigilMetrics) -> GroupCommitWriter:
    """Start the group-commit writer (on the migrated database)."""
    storage = settings.storage
    commit_latency = metrics.db_commit_latency
    writer = GroupCommitWriter(
        storage.database_url,
        storage.commit_max_batch,
        storage.commit_max_delay_ms,
        storage.queue_max,
        on_commit=lambda _rows, seconds: commit_latency.observe(seconds),
    )
    await writer.start()
    return writer


@asynccontextmanager
async def running_services(
    settings: Settings,
    metrics: VigilMetrics,
    model_manager: ModelManager | None = None,
    state_store: StateStore | None = None,
    writer: GroupCommitWriter | None = None,
    lifecycle: LifecycleServices | None = None,
) -> AsyncIterator[Services]:
    """Migrate, build what was not injected, yield the running services, close what was built.

    The runtime is the stream worker's (:meth:`Runtime.build`); the API adds the group-commit
    writer that concurrent requests share, and the model lifecycle.
    """
    async with AsyncExitStack() as stack:
        await asyncio.to_thread(upgrade_database, settings.storage.database_url)
        if writer is None:
            writer = await _start_writer(settings, metrics)
            stack.push_async_callback(writer.stop)
        runtime = await asyncio.to_thread(
            Runtime.build,
            settings,
            "api",
            False,  # migrated above
            metrics=metrics,
            models=model_manager,
            state=state_store,
            writer=writer,
        )
        stack.push_async_callback(runtime.close)
        runtime.watch_state()
        running = writer
        metrics.writer_queue_depth.set_function(lambda: running.queue_depth)
        metrics.database_up.set_function(lambda: 1 if running.healthy else 0)
        lifecycle = await stack.enter_async_context(
            running_lifecycle(settings, runtime.models, lifecycle)
        )
        predictions = PredictionService(runtime)
        cases = CaseService(settings.cases, lifecycle.engine, runtime, metrics)
        stack.push_async_callback(cases.close)
        log.info("serving model %s", runtime.models.snapshot().champion.metadata.model_version)
        yield Services(settings, metrics, runtime, writer, predictions, lifecycle, cases)


def lifespan_for(
    settings: Settings,
    metrics: VigilMetrics,
    model_manager: ModelManager | None,
    state_store: StateStore | None,
    writer: GroupCommitWriter | None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The FastAPI lifespan: services live on ``app.state.services`` while the app runs."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Tests may set ``app.state.lifecycle`` before start-up to inject a fake retrain job.
        injected = getattr(app.state, "lifecycle", None)
        async with running_services(
            settings, metrics, model_manager, state_store, writer, injected
        ) as services:
            app.state.services = services
            admission = app.state.admission
            admission.start()
            # Everything built so far lives as long as the app: keep it out of the garbage
            # collector's full scans, which otherwise cost ~10 us per request on the hot path.
            try:
                with frozen_start_up(metrics.gc_pauses):
                    yield
            finally:
                await admission.stop()
                app.state.services = None

    return lifespan
