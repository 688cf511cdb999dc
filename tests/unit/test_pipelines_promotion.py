"""The retrain job's promotion also moves the MLflow registry's champion alias."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np

from onnx_factory import logistic_model, make_metadata, save
from vigil.config import Settings
from vigil.features import feature_names
from vigil.inference.roles import CHALLENGER, CHAMPION
from vigil.storage import create_db_engine, upgrade_database
from vigil.tracking.model_registry import ModelRegistry
from vigil.training.challenger import gate_and_promote


def registered_model(settings: Settings, path: Path, version_name: str) -> int:
    """An ONNX model logged to an MLflow run and registered; returns its registry version."""
    names = feature_names(settings.features)
    metadata = make_metadata(names, threshold=0.5, model_version=version_name)
    save(logistic_model(np.linspace(-1, 1, len(names)).tolist(), 0.0, metadata), path)
    mlflow.set_tracking_uri(settings.tracking.mlflow_uri)
    experiment = mlflow.set_experiment("promotion")  # not whatever an earlier test left active
    with mlflow.start_run(experiment_id=experiment.experiment_id) as run:
        mlflow.log_artifact(str(path))
    return ModelRegistry(settings.tracking).register(run.info.run_id).version


def test_an_installed_challenger_becomes_the_registry_champion(
    small_settings: Settings, tmp_path: Path
) -> None:
    registry = ModelRegistry(small_settings.tracking)
    old = registered_model(small_settings, tmp_path / "old" / "model.onnx", "old")
    new = registered_model(small_settings, tmp_path / "new" / "model.onnx", "new")
    registry.set_alias(CHAMPION, old)
    registry.set_alias(CHALLENGER, new)
    upgrade_database(small_settings.storage.database_url)
    engine = create_db_engine(small_settings.storage.database_url)

    # no serving model yet: the challenger is installed, and the registry follows
    outcome = gate_and_promote(small_settings, tmp_path / "new" / "model.onnx", engine, new)
    engine.dispose()

    assert outcome.promoted
    assert (
        small_settings.inference.model_path.read_bytes()
        == (tmp_path / "new" / "model.onnx").read_bytes()
    )
    champion = registry.by_alias(CHAMPION)
    assert champion is not None and champion.version == new


def test_without_a_registry_version_the_aliases_stay(
    small_settings: Settings, tmp_path: Path
) -> None:
    registry = ModelRegistry(small_settings.tracking)
    old = registered_model(small_settings, tmp_path / "old" / "model.onnx", "old")
    registry.set_alias(CHAMPION, old)
    upgrade_database(small_settings.storage.database_url)
    engine = create_db_engine(small_settings.storage.database_url)
    outcome = gate_and_promote(small_settings, tmp_path / "old" / "model.onnx", engine)
    engine.dispose()
    assert outcome.promoted
    champion = registry.by_alias(CHAMPION)
    assert champion is not None and champion.version == old
