"""Retraining in the background, one at a time; experiment state lives in the database."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine

from vigil.retraining.errors import ExperimentNotFound, RetrainInProgress
from vigil.storage import (
    Experiment,
    create_experiment,
    fail_experiment,
    finish_experiment,
    get_experiment,
    list_experiments,
    mark_experiment_running,
)

logger = logging.getLogger(__name__)

ACTIVE_STATUSES = ("queued", "running")
INTERRUPTED = "interrupted: the service stopped while this experiment was active"


@dataclass(frozen=True)
class TrainOutcome:
    """What a finished training produced (the retrain job writes it as JSON for its parent)."""

    model_path: Path
    metrics: dict[str, float] = field(default_factory=dict)
    mlflow_run_id: str | None = None

    def write_json(self, path: Path) -> None:
        """Write the outcome to ``path`` (read back with :meth:`read_json`)."""
        document = {
            "model_path": str(self.model_path),
            "metrics": self.metrics,
            "mlflow_run_id": self.mlflow_run_id,
        }
        path.write_text(json.dumps(document, indent=2))

    @classmethod
    def read_json(cls, path: Path) -> TrainOutcome:
        """The outcome :meth:`write_json` wrote."""
        document = json.loads(path.read_text())
        return cls(
            model_path=Path(document["model_path"]),
            metrics={k: float(v) for k, v in document["metrics"].items()},
            mlflow_run_id=document["mlflow_run_id"],
        )


class TrainJob(Protocol):
    """Trains one experiment (blocking); raises on failure."""

    def run(self, experiment_id: int) -> TrainOutcome:
        """Train and return the outcome."""
        ...

    def cancel(self) -> None:
        """Stop a running training as soon as possible."""
        ...


def run_experiment(
    engine: Engine, experiment_id: int, train: Callable[[], TrainOutcome]
) -> TrainOutcome:
    """Run a queued experiment: ``running``, then ``finished`` with the outcome of ``train``.

    Every retrain goes through here, the API's background one and the Dagster retrain job's,
    so each is an experiment (``GET /metrics/{id}``, deployable with ``POST /deploy/{id}``).
    A failure is recorded as ``failed`` with the error, then raised again.
    """
    with engine.begin() as connection:
        mark_experiment_running(connection, experiment_id)
    try:
        outcome = train()
    except Exception as error:
        with engine.begin() as connection:
            fail_experiment(connection, experiment_id, f"{type(error).__name__}: {error}")
        raise
    with engine.begin() as connection:
        finish_experiment(
            connection,
            experiment_id,
            outcome.metrics,
            mlflow_run_id=outcome.mlflow_run_id,
            model_path=str(outcome.model_path),
        )
    logger.info("experiment %d finished: %s", experiment_id, outcome.metrics)
    return outcome


class RetrainRunner:
    """Queues an experiment, trains it in a background thread and records the result."""

    def __init__(self, engine: Engine, job: TrainJob) -> None:
        self._engine = engine
        self._job = job
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def fail_interrupted(self) -> list[int]:
        """Mark experiments left queued/running by a previous process as failed (start-up)."""
        with self._engine.begin() as connection:
            stale = [
                e.id
                for e in list_experiments(connection, limit=1000)
                if e.status in ACTIVE_STATUSES
            ]
            for experiment_id in stale:
                fail_experiment(connection, experiment_id, INTERRUPTED)
        if stale:
            logger.warning("marked interrupted experiments %s as failed", stale)
        return stale

    def _active_in_database(self) -> list[int]:
        with self._engine.connect() as connection:
            return [
                e.id for e in list_experiments(connection, limit=20) if e.status in ACTIVE_STATUSES
            ]

    def submit(self) -> int:
        """Queue a retraining and start it; :class:`RetrainInProgress` if one is active."""
        with self._lock:
            if self.busy:
                raise RetrainInProgress("a retraining is already running; wait for it to finish")
            active = self._active_in_database()
            if active:
                raise RetrainInProgress(f"experiment {active[0]} is still queued or running")
            with self._engine.begin() as connection:
                experiment_id = create_experiment(connection)
            self._thread = threading.Thread(
                target=self._run,
                args=(experiment_id,),
                name=f"retrain-{experiment_id}",
                daemon=True,
            )
            self._thread.start()
        logger.info("experiment %d queued", experiment_id)
        return experiment_id

    def _run(self, experiment_id: int) -> None:
        try:
            run_experiment(self._engine, experiment_id, lambda: self._job.run(experiment_id))
        except Exception:  # recorded on the experiment; a thread has no one to raise to
            logger.exception("experiment %d failed", experiment_id)

    @property
    def busy(self) -> bool:
        """Whether a retraining thread of this process is alive."""
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current retraining ends; False if still running after ``timeout``."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.busy

    def close(self, timeout: float = 10.0) -> None:
        """Cancel a running job and wait for its thread (service shutdown)."""
        if self.busy:
            self._job.cancel()
            self.wait(timeout)

    def get(self, experiment_id: int) -> Experiment:
        """One experiment; :class:`ExperimentNotFound` for an unknown id."""
        with self._engine.connect() as connection:
            experiment = get_experiment(connection, experiment_id)
        if experiment is None:
            raise ExperimentNotFound(f"experiment {experiment_id} does not exist")
        return experiment

    def list(self, limit: int = 50) -> list[Experiment]:
        """Experiments, newest first."""
        with self._engine.connect() as connection:
            return list_experiments(connection, limit)
