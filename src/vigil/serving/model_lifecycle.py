"""What the lifecycle and admin routes run on, built by the app's one set-up.

:func:`running_lifecycle` is entered by :func:`vigil.serving.lifespan.running_services`
after the database is migrated: the background retrain runner (experiments left active by a
stopped process are failed first), the training data, the database engine of the lifecycle
bookkeeping, and the follower of the ``deployments`` table, so a model deployed by any
process reaches this one. Nothing here is built lazily on a first request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import Engine

from vigil.config import Settings
from vigil.data.training_data import TrainingData
from vigil.data.transaction import EventTimePolicy
from vigil.inference.follower import DeploymentFollower
from vigil.inference.manager import ModelManager
from vigil.retraining.job import SubprocessTrainJob
from vigil.retraining.runner import RetrainRunner
from vigil.storage import create_db_engine


@dataclass(frozen=True)
class LifecycleServices:
    """The retrain runner, the training data and the engine of the lifecycle bookkeeping."""

    runner: RetrainRunner
    training_data: TrainingData
    engine: Engine


def build_lifecycle(settings: Settings) -> LifecycleServices:
    """Production wiring on a migrated database: the subprocess retrain job and the raw data."""
    engine = create_db_engine(settings.storage.database_url)
    runner = RetrainRunner(engine, SubprocessTrainJob(settings))
    runner.fail_interrupted()
    data = TrainingData(settings.data.raw_dir, EventTimePolicy.from_config(settings.data))
    return LifecycleServices(runner, data, engine)


@asynccontextmanager
async def running_lifecycle(
    settings: Settings, models: ModelManager, injected: LifecycleServices | None = None
) -> AsyncIterator[LifecycleServices]:
    """Build (unless injected) and follow deployments; on exit stop both, close what was built.

    A running retrain is cancelled on shut-down (its experiment is recorded as failed).
    """
    lifecycle = (
        injected if injected is not None else await asyncio.to_thread(build_lifecycle, settings)
    )
    follower = await asyncio.to_thread(DeploymentFollower, lifecycle.engine, models)
    following = asyncio.create_task(follower.run(), name="deployment-follower")
    try:
        yield lifecycle
    finally:
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
        await asyncio.to_thread(lifecycle.runner.close)
        if injected is None:
            lifecycle.engine.dispose()
