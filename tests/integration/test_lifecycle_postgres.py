"""The lifecycle's bookkeeping on real PostgreSQL: experiments and deployments."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from conftest import private_pg_schema
from onnx_factory import logistic_model, make_metadata, save
from vigil.inference.deploy import deploy_experiment
from vigil.inference.errors import NotDeployable
from vigil.inference.manager import ModelManager
from vigil.retraining.errors import RetrainInProgress
from vigil.retraining.runner import RetrainRunner, TrainOutcome
from vigil.storage import create_db_engine, latest_deployment, upgrade_database

pytestmark = pytest.mark.integration

FEATURES = ["tx_amount", "tx_during_night"]


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    """A migrated private schema, dropped afterwards (parallel runs never clash)."""
    with private_pg_schema(postgres_url, "vigil_lifecycle") as url:
        upgrade_database(url)
        engine = create_db_engine(url)
        yield engine
        engine.dispose()


class ModelJob:
    """Writes a tiny model once released."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.release = threading.Event()

    def run(self, experiment_id: int) -> TrainOutcome:
        assert self.release.wait(10)
        metadata = make_metadata(FEATURES, model_version=f"pg-{experiment_id}")
        save(logistic_model([0.1, 0.0], -1.0, metadata), self.out)
        return TrainOutcome(self.out, {"test.average_precision": 0.4}, "run-pg")

    def cancel(self) -> None:
        self.release.set()


def test_retrain_and_deploy_bookkeeping_on_postgres(engine: Engine, tmp_path: Path) -> None:
    job = ModelJob(tmp_path / "new.onnx")
    runner = RetrainRunner(engine, job)
    experiment_id = runner.submit()
    with pytest.raises(RetrainInProgress):
        runner.submit()
    running = runner.get(experiment_id)
    old = save(logistic_model([0.0, 0.0], 0.0, make_metadata(FEATURES, model_version="old")),
               tmp_path / "old.onnx")  # fmt: skip
    manager = ModelManager.from_paths(old)
    with pytest.raises(NotDeployable, match="only a finished one"):
        deploy_experiment(running, manager, tmp_path / "serving.onnx", engine)

    job.release.set()
    assert runner.wait(10)
    finished = runner.get(experiment_id)
    assert (finished.status, finished.metrics) == ("finished", {"test.average_precision": 0.4})

    result = deploy_experiment(finished, manager, tmp_path / "serving.onnx", engine)
    assert (result.previous_version, result.model_version) == ("old", f"pg-{experiment_id}")
    assert manager.snapshot().champion.model_version == f"pg-{experiment_id}"
    with engine.connect() as connection:
        deployment = latest_deployment(connection)
    assert deployment is not None
    assert (deployment.model_version, deployment.experiment_id) == (
        f"pg-{experiment_id}",
        experiment_id,
    )
