"""Background retraining: one at a time, statuses, failures recorded, unknown ids."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine

from vigil.retraining.errors import ExperimentNotFound, RetrainInProgress
from vigil.retraining.runner import INTERRUPTED, RetrainRunner, TrainOutcome
from vigil.storage import create_db_engine, create_experiment, upgrade_database


class GatedJob:
    """A training that waits for the test to release it, then succeeds or fails."""

    def __init__(self, error: Exception | None = None) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.error = error
        self.cancelled = False

    def run(self, experiment_id: int) -> TrainOutcome:
        self.started.set()
        assert self.release.wait(10), "test never released the job"
        if self.error is not None:
            raise self.error
        return TrainOutcome(Path(f"runs/{experiment_id}/model.onnx"), {"ap": 0.5}, "run-abc")

    def cancel(self) -> None:
        self.cancelled = True
        self.release.set()


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    url = f"sqlite:///{tmp_path / 'vigil.db'}"
    upgrade_database(url)
    return create_db_engine(url)


def test_one_retrain_at_a_time_then_finished(engine: Engine) -> None:
    job = GatedJob()
    runner = RetrainRunner(engine, job)

    first = runner.submit()
    assert job.started.wait(5)
    assert runner.get(first).status == "running"
    with pytest.raises(RetrainInProgress):
        runner.submit()

    job.release.set()
    assert runner.wait(5)
    done = runner.get(first)
    assert (done.status, done.metrics, done.mlflow_run_id) == ("finished", {"ap": 0.5}, "run-abc")
    assert done.model_path == f"runs/{first}/model.onnx"
    assert done.created_at <= done.started_at <= done.finished_at

    job.started.clear()
    second = runner.submit()
    assert second == first + 1
    assert runner.wait(5)
    assert [e.id for e in runner.list()] == [second, first]


def test_a_failing_job_is_recorded_as_failed(engine: Engine) -> None:
    job = GatedJob(error=RuntimeError("training diverged"))
    job.release.set()
    runner = RetrainRunner(engine, job)
    experiment_id = runner.submit()
    assert runner.wait(5)
    failed = runner.get(experiment_id)
    assert failed.status == "failed"
    assert failed.error == "RuntimeError: training diverged"
    assert failed.metrics is None


def test_unknown_experiment_is_not_found(engine: Engine) -> None:
    with pytest.raises(ExperimentNotFound, match="42"):
        RetrainRunner(engine, GatedJob()).get(42)


def test_an_experiment_active_in_the_database_blocks_submit(engine: Engine) -> None:
    with engine.begin() as connection:
        stale = create_experiment(connection)
    runner = RetrainRunner(engine, GatedJob())
    with pytest.raises(RetrainInProgress, match=str(stale)):
        runner.submit()
    assert runner.fail_interrupted() == [stale]
    assert runner.get(stale).error == INTERRUPTED


def test_close_cancels_the_running_job(engine: Engine) -> None:
    job = GatedJob()
    runner = RetrainRunner(engine, job)
    runner.submit()
    assert job.started.wait(5)
    runner.close(timeout=5)
    assert job.cancelled
    assert not runner.busy
