"""Model lifecycle routes: add labelled data, retrain in the background, inspect, deploy.

Mutating routes (``PUT /add_data``, ``PUT /retrain``, ``POST /deploy/{id}``) need the API
key. They run on the lifecycle services the app's set-up built (``serving/model_lifecycle``);
domain errors become HTTP answers in ``serving/errors.py``. Training runs in a child process
(torch never enters the API); deploying hot-swaps the champion through the ModelManager, so
requests in flight never fail.
"""

from __future__ import annotations

import asyncio
import logging
import re
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi import Path as PathParam

from vigil.data.training_data import parse_csv
from vigil.decisions.labels import (
    store_uploaded_verdicts,
    stored_verdicts,
    uploaded_label_records,
)
from vigil.inference.deploy import deploy_experiment, promote_in_registry
from vigil.serving.deps import LifecycleDep, ServicesDep
from vigil.serving.schemas import AddDataOut, DeployOut, ErrorOut, ExperimentOut, RetrainOut
from vigil.serving.security import ApiKeyDep
from vigil.serving.uploads import uploaded_csv
from vigil.storage import Experiment

logger = logging.getLogger(__name__)

router = APIRouter(tags=["lifecycle"])

_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing X-API-Key."},
    403: {"model": ErrorOut, "description": "Wrong X-API-Key."},
}


_ABSOLUTE_PATH = re.compile(r"(?<![\w.:])/[^\s`'\"]+")
# The largest id the experiments table holds (a 32-bit integer column on PostgreSQL).
ExperimentId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]


def public_error(error: str | None) -> str | None:
    """What anyone may read of a failure: its first line, paths cut to their last part.

    The stored error keeps the log tail for operators (``runs/experiments/<id>/train.log``).
    """
    if error is None:
        return None
    first = error.strip().splitlines()[0] if error.strip() else ""
    return _ABSOLUTE_PATH.sub(lambda m: ".../" + m.group(0).rstrip("/").rsplit("/", 1)[-1], first)


def experiment_out(experiment: Experiment) -> ExperimentOut:
    """The HTTP body of a stored experiment."""
    duration = None
    if experiment.started_at is not None and experiment.finished_at is not None:
        duration = (experiment.finished_at - experiment.started_at).total_seconds()
    return ExperimentOut(
        experiment_id=experiment.id,
        status=experiment.status,
        metrics=experiment.metrics,
        mlflow_run_id=experiment.mlflow_run_id,
        model_path=experiment.model_path,
        error=public_error(experiment.error),
        created_at=experiment.created_at,
        started_at=experiment.started_at,
        finished_at=experiment.finished_at,
        duration_seconds=duration,
    )


@router.put(
    "/add_data",
    response_model=AddDataOut,
    dependencies=[ApiKeyDep],
    responses={
        **_AUTH,
        400: {"model": ErrorOut},
        409: {
            "model": ErrorOut,
            "description": "A row's transaction_id is a scored transaction with another "
            "tx_datetime, customer_id, terminal_id or tx_amount: nothing written.",
        },
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
    # An unreachable state store fails the upload before anything is written; if it fails
    # later anyway, a retry is safe (see vigil.decisions.labels).
    await services.features.store.aping()
    frame = parse_csv(payload)
    result = await asyncio.to_thread(
        lifecycle.training_data.append, frame, partial(store_uploaded_verdicts, lifecycle.engine)
    )
    # The stored verdict of every valid row, the ones a failed attempt stored included: the
    # state gets them whether this upload or an earlier one wrote the rows.
    verdicts = await asyncio.to_thread(stored_verdicts, lifecycle.engine, result.labels)
    await services.runtime.record_labels(uploaded_label_records(verdicts), verdicts)
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
    experiment_id = await asyncio.to_thread(lifecycle.runner.submit)
    return RetrainOut(experiment_id=experiment_id, status="queued")


@router.get(
    "/metrics/{experiment_id}",
    response_model=ExperimentOut,
    responses={404: {"model": ErrorOut}},
    summary="An experiment's status (queued/running/failed/finished), metrics and timings",
)
async def experiment_metrics(experiment_id: ExperimentId, lifecycle: LifecycleDep) -> ExperimentOut:
    """404 for an unknown id."""
    return experiment_out(await asyncio.to_thread(lifecycle.runner.get, experiment_id))


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
    return [experiment_out(e) for e in found]


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
async def deploy(
    experiment_id: ExperimentId, lifecycle: LifecycleDep, services: ServicesDep
) -> DeployOut:
    """Swap in memory first (the old model keeps serving on failure), then registry alias."""
    experiment = await asyncio.to_thread(lifecycle.runner.get, experiment_id)
    serving_path = Path(services.settings.inference.model_path)
    result = await asyncio.to_thread(
        deploy_experiment, experiment, services.models, serving_path, lifecycle.engine
    )
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
