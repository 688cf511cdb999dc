"""The Dagster retrain job's challenger is an experiment, recorded as PUT /retrain's are.

The training itself is stood in for (the real one is in test_pipelines_retrain, slow).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from api_support import write_model
from vigil.config import Settings
from vigil.pipelines import retrain
from vigil.pipelines.resources import build_resources
from vigil.storage import REGISTRY_VERSION, create_db_engine, list_experiments, upgrade_database
from vigil.training.challenger import Challenger


def materialize(settings: Settings) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [retrain.challenger_model],
        resources=build_resources(settings),
        run_config={"ops": {"challenger_model": {"config": {"as_of": None}}}},
        raise_on_error=False,
    )


def test_a_dagster_challenger_is_a_finished_experiment(
    small_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upgrade_database(small_settings.storage.database_url)
    model = write_model(small_settings, tmp_path / "challenger.onnx", "challenger-1")
    trained = Challenger(model, 7, "mlflow-run-7", {"test.average_precision": 0.42})
    monkeypatch.setattr(retrain, "train_challenger", lambda settings: trained)
    result = materialize(small_settings)
    assert result.success
    event = result.asset_materializations_for_node("challenger_model")[0]
    experiment_id = event.metadata["experiment_id"].value
    with create_db_engine(small_settings.storage.database_url).connect() as connection:
        (experiment,) = list_experiments(connection)
    assert experiment.id == experiment_id and experiment.status == "finished"
    assert experiment.metrics == {"test.average_precision": 0.42, REGISTRY_VERSION: 7.0}
    assert experiment.model_path == str(model) and experiment.mlflow_run_id == "mlflow-run-7"
    assert event.metadata["registry_version"].value == 7


def test_a_failed_dagster_retrain_is_a_failed_experiment(
    small_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    upgrade_database(small_settings.storage.database_url)

    def broken(settings: Settings) -> Challenger:
        raise RuntimeError("no labelled data in the training period")

    monkeypatch.setattr(retrain, "train_challenger", broken)
    assert not materialize(small_settings).success
    with create_db_engine(small_settings.storage.database_url).connect() as connection:
        (experiment,) = list_experiments(connection)
    assert experiment.status == "failed"
    assert experiment.error == "RuntimeError: no labelled data in the training period"
