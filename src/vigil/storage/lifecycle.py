"""Deployments and retraining experiments: the model lifecycle's bookkeeping."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, Insert, insert, select, update

from vigil.inference.roles import CHAMPION
from vigil.storage.errors import StorageError
from vigil.storage.records import Deployment, Experiment, utc_now
from vigil.storage.tables import deployments, experiments

# The experiment metric holding its model registry version (set by the retrain job).
REGISTRY_VERSION = "registry_version"


def record_deployment(
    connection: Connection,
    model_version: str,
    model_path: str,
    alias: str = CHAMPION,
    experiment_id: int | None = None,
) -> Deployment:
    """Record that ``model_version`` now serves under ``alias``."""
    deployed_at = utc_now()
    statement = insert(deployments).values(
        model_version=model_version,
        model_path=model_path,
        deployed_at=deployed_at,
        alias=alias,
        experiment_id=experiment_id,
    )
    new_id = _inserted_id(connection, statement)
    return Deployment(new_id, model_version, model_path, deployed_at, alias, experiment_id)


def save_deployment(
    engine: Engine,
    model_version: str,
    model_path: str,
    alias: str = CHAMPION,
    experiment_id: int | None = None,
) -> Deployment:
    """:func:`record_deployment` in a transaction of its own (what followers then apply)."""
    with engine.begin() as connection:
        return record_deployment(connection, model_version, model_path, alias, experiment_id)


def _inserted_id(connection: Connection, statement: Insert) -> int:
    """Execute an INSERT and return the new row's integer primary key."""
    key = connection.execute(statement).inserted_primary_key
    if key is None:
        raise StorageError("the database returned no primary key for the new row")
    return int(key[0])


def latest_deployment(connection: Connection, alias: str = CHAMPION) -> Deployment | None:
    """The most recent deployment under ``alias``, or None."""
    query = (
        select(deployments)
        .where(deployments.c.alias == alias)
        .order_by(deployments.c.deployed_at.desc(), deployments.c.id.desc())
        .limit(1)
    )
    row = connection.execute(query).mappings().first()
    return Deployment(**row) if row is not None else None


def list_deployments(connection: Connection, limit: int = 50) -> list[Deployment]:
    """Deployments, newest first."""
    query = select(deployments).order_by(deployments.c.id.desc()).limit(limit)
    return [Deployment(**row) for row in connection.execute(query).mappings()]


def create_experiment(connection: Connection) -> int:
    """Queue a new experiment and return its integer id."""
    values = {"status": "queued", "created_at": utc_now()}
    return _inserted_id(connection, insert(experiments).values(values))


def get_experiment(connection: Connection, experiment_id: int) -> Experiment | None:
    """One experiment by id, or None."""
    query = select(experiments).where(experiments.c.id == experiment_id)
    row = connection.execute(query).mappings().first()
    return Experiment(**row) if row is not None else None


def list_experiments(connection: Connection, limit: int = 50) -> list[Experiment]:
    """Experiments, newest first."""
    query = select(experiments).order_by(experiments.c.id.desc()).limit(limit)
    return [Experiment(**row) for row in connection.execute(query).mappings()]


def _update_experiment(connection: Connection, experiment_id: int, **values: Any) -> None:
    result = connection.execute(
        update(experiments).where(experiments.c.id == experiment_id).values(**values)
    )
    if result.rowcount == 0:
        raise StorageError(f"experiment {experiment_id} does not exist")


def mark_experiment_running(connection: Connection, experiment_id: int) -> None:
    """Move an experiment to ``running``."""
    _update_experiment(connection, experiment_id, status="running", started_at=utc_now())


def finish_experiment(
    connection: Connection,
    experiment_id: int,
    metrics: dict[str, float],
    mlflow_run_id: str | None = None,
    model_path: str | None = None,
) -> None:
    """Move an experiment to ``finished`` with its metrics and artefacts."""
    _update_experiment(
        connection,
        experiment_id,
        status="finished",
        finished_at=utc_now(),
        metrics=metrics,
        mlflow_run_id=mlflow_run_id,
        model_path=model_path,
    )


def fail_experiment(connection: Connection, experiment_id: int, error: str) -> None:
    """Move an experiment to ``failed`` with the error message."""
    _update_experiment(
        connection, experiment_id, status="failed", finished_at=utc_now(), error=error
    )
