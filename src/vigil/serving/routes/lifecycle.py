"""Model lifecycle routes: add labelled data, retrain in the background, inspect, deploy.

Mutating routes (``PUT /add_data``, ``PUT /retrain``, ``POST /deploy/{id}``) need the API
key. Training runs in child processes (torch never enters the API); deploying hot-swaps the
champion through the ModelManager, so requests in flight never fail.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, status
from pydantic import BaseModel
from sqlalchemy import Engine

from vigil.config import Settings
from vigil.data.training_data import RejectedData, TrainingData, parse_csv
from vigil.data.transaction import EventTimePolicy
from vigil.inference.deploy import deploy_experiment, promote_in_registry
from vigil.inference.errors import NotDeployable
from vigil.inference.follower import follow_deployments, run_follower
from vigil.retraining.errors import ExperimentNotFound, RetrainInProgress
from vigil.retraining.job import SubprocessTrainJob
from vigil.retraining.runner import RetrainRunner
from vigil.serving.deps import ServicesDep
from vigil.serving.errors import ServiceError
from vigil.serving.schemas import ErrorOut
from vigil.serving.security import ApiKeyDep
from vigil.serving.uploads import uploaded_csv
from vigil.serving.verdicts import record_verdicts
from vigil.storage import Experiment, create_db_engine, upgrade_database

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LifecycleServices:
    """What the lifecycle routes run on; set ``app.state.lifecycle`` first to inject fakes."""

    runner: RetrainRunner
    training_data: TrainingData
    engine: Engine


def build_lifecycle(settings: Settings) -> LifecycleServices:
    """Production wiring: the migrated database and the subprocess training job."""
    upgrade_database(settings.storage.database_url)
    engine = create_db_engine(settings.storage.database_url)
    runner = RetrainRunner(engine, SubprocessTrainJob(settings))
    runner.fail_interrupted()
    return LifecycleServices(
        runner,
        TrainingData(settings.data.raw_dir, EventTimePolicy.from_config(settings.data)),
        engine,
    )


_build_lock = threading.Lock()


async def _follow_deployments(app: FastAPI) -> asyncio.Task[None] | None:
    """Start following other processes' deployments (the hot swap reaches every process)."""
    services = getattr(app.state, "services", None)
    if services is None:
        return None
    follower = await asyncio.to_thread(
        follow_deployments, app.state.settings.storage.database_url, services.models
    )
    if follower is None:
        return None
    return asyncio.create_task(run_follower(follower), name="deployment-follower")


@asynccontextmanager
async def lifecycle_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Follow deployments; on shut-down cancel a running retrain, close what was built."""
    injected = getattr(app.state, "lifecycle", None)
    follower = await _follow_deployments(app)
    try:
        yield
    finally:
        if follower is not None:
            follower.cancel()
        lifecycle: LifecycleServices | None = getattr(app.state, "lifecycle", None)
        if lifecycle is not None:
            await asyncio.to_thread(lifecycle.runner.close)
            if lifecycle is not injected:
                lifecycle.engine.dispose()
                app.state.lifecycle = None


def get_lifecycle(request: Request) -> LifecycleServices:
    """The lifecycle services of the running app, built on the first lifecycle request."""
    state = request.app.state
    with _build_lock:
        if getattr(state, "lifecycle", None) is None:
            state.lifecycle = build_lifecycle(state.settings)
        lifecycle: LifecycleServices = state.lifecycle
    return lifecycle


LifecycleDep = Annotated[LifecycleServices, Depends(get_lifecycle)]

router = APIRouter(tags=["lifecycle"], lifespan=lifecycle_lifespan)


class NotFound(ServiceError):
    """No such experiment."""

    status_code = status.HTTP_404_NOT_FOUND


class Conflict(ServiceError):
    """The request conflicts with the current state (a retrain runs, model not finished)."""

    status_code = status.HTTP_409_CONFLICT


class Unprocessable(ServiceError):
    """The upload broke the data contract; nothing was written."""

    status_code = status.HTTP_422_UNPROCESSABLE_CONTENT


class AddDataOut(BaseModel):
    """What one upload did to the training data."""

    received: int
    appended: int
    duplicates: int
    duplicate_ids: list[int]


class RetrainOut(BaseModel):
    """The queued experiment."""

    experiment_id: int
    status: str


class ExperimentOut(BaseModel):
    """One experiment: status, metrics, MLflow run id and timings."""

    experiment_id: int
    status: str
    metrics: dict[str, float] | None
    mlflow_run_id: str | None
    model_path: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None

    @classmethod
    def of(cls, experiment: Experiment) -> ExperimentOut:
        """From the storage record."""
        duration = None
        if experiment.started_at is not None and experiment.finished_at is not None:
            duration = (experiment.finished_at - experiment.started_at).total_seconds()
        return cls(
            experiment_id=experiment.id,
            status=experiment.status,
            metrics=experiment.metrics,
            mlflow_run_id=experiment.mlflow_run_id,
            model_path=experiment.model_path,
            error=experiment.error,
            created_at=experiment.created_at,
            started_at=experiment.started_at,
            finished_at=experiment.finished_at,
            duration_seconds=duration,
        )


class DeployOut(BaseModel):
    """The model now serving, the one it replaced, and the registry alias update."""

    experiment_id: int
    model_version: str
    previous_version: str
    model_path: str
    registry_version: int | None
    registry_error: str | None = None


_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing X-API-Key."},
    403: {"model": ErrorOut, "description": "Wrong X-API-Key."},
}


@router.put(
    "/add_data",
    response_model=AddDataOut,
    dependencies=[ApiKeyDep],
    responses={
        **_AUTH,
        400: {"model": ErrorOut},
        415: {"model": ErrorOut},
        422: {"model": ErrorOut, "description": "Invalid file: every reason listed."},
    },
    summary="Append a labelled CSV to the training data (all rows valid, or nothing)",
)
async def add_data(request: Request, lifecycle: LifecycleDep, services: ServicesDep) -> AddDataOut:
    """Validate the whole file against the data contract, then append new transaction ids.

    The appended rows' labels also count as verdicts: stored in the ``labels`` table (the
    business figures) and fed to the online fraud state, as the labels queue's are.
    """
    payload = await uploaded_csv(request)
    try:
        frame = parse_csv(payload)
        result = await asyncio.to_thread(lifecycle.training_data.append, frame)
    except RejectedData as error:
        raise Unprocessable(str(error)) from None
    await record_verdicts(lifecycle.engine, services.features, result.labels)
    return AddDataOut(
        received=result.received,
        appended=result.appended,
        duplicates=result.duplicates,
        duplicate_ids=result.duplicate_ids,
    )


@router.put(
    "/retrain",
    response_model=RetrainOut,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[ApiKeyDep],
    responses={**_AUTH, 409: {"model": ErrorOut, "description": "A retrain is running."}},
    summary="Start retraining on the current data in the background",
)
async def retrain(lifecycle: LifecycleDep) -> RetrainOut:
    """Returns the integer experiment id at once; poll ``GET /metrics/{experiment_id}``."""
    try:
        experiment_id = await asyncio.to_thread(lifecycle.runner.submit)
    except RetrainInProgress as error:
        raise Conflict(str(error)) from None
    return RetrainOut(experiment_id=experiment_id, status="queued")


def _experiment(lifecycle: LifecycleServices, experiment_id: int) -> Experiment:
    try:
        return lifecycle.runner.get(experiment_id)
    except ExperimentNotFound as error:
        raise NotFound(str(error)) from None


@router.get(
    "/metrics/{experiment_id}",
    response_model=ExperimentOut,
    responses={404: {"model": ErrorOut}},
    summary="An experiment's status (queued/running/failed/finished), metrics and timings",
)
async def experiment_metrics(experiment_id: int, lifecycle: LifecycleDep) -> ExperimentOut:
    """404 for an unknown id."""
    return ExperimentOut.of(await asyncio.to_thread(_experiment, lifecycle, experiment_id))


@router.get(
    "/experiments",
    response_model=list[ExperimentOut],
    summary="Retraining experiments, newest first",
)
async def experiments(
    lifecycle: LifecycleDep, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> list[ExperimentOut]:
    """Every experiment this service ran (up to ``limit``)."""
    found = await asyncio.to_thread(lifecycle.runner.list, limit)
    return [ExperimentOut.of(e) for e in found]


@router.post(
    "/deploy/{experiment_id}",
    response_model=DeployOut,
    dependencies=[ApiKeyDep],
    responses={
        **_AUTH,
        404: {"model": ErrorOut},
        409: {"model": ErrorOut, "description": "Not finished, or its model cannot load."},
    },
    summary="Promote an experiment's model to champion: hot swap, no restart, no failed request",
)
async def deploy(experiment_id: int, lifecycle: LifecycleDep, services: ServicesDep) -> DeployOut:
    """Swap in memory first (the old model keeps serving on failure), then registry alias."""
    experiment = await asyncio.to_thread(_experiment, lifecycle, experiment_id)
    serving_path = Path(services.settings.inference.model_path)
    try:
        result = await asyncio.to_thread(
            deploy_experiment, experiment, services.models, serving_path, lifecycle.engine
        )
    except NotDeployable as error:
        raise Conflict(str(error)) from None
    registry_version, registry_error = None, None
    try:
        registry_version = await asyncio.to_thread(
            promote_in_registry, services.settings.tracking, experiment
        )
    except Exception as error:  # MLflow's errors share no base; the swap itself succeeded
        logger.exception("deployed experiment %d but the registry alias failed", experiment_id)
        registry_error = f"{type(error).__name__}: {error}"
    return DeployOut(
        experiment_id=result.experiment_id,
        model_version=result.model_version,
        previous_version=result.previous_version,
        model_path=result.model_path,
        registry_version=registry_version,
        registry_error=registry_error,
    )
