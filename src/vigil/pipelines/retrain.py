"""Retrain assets: a challenger trained on recent data, served only if the gate promotes it."""

from datetime import date, timedelta
from pathlib import Path

import dagster as dg

from vigil.config import Settings, build_settings, settings_to_dict
from vigil.pipelines.resources import DatabaseResource, SettingsResource
from vigil.retraining.runner import run_experiment
from vigil.storage import REGISTRY_VERSION, create_experiment
from vigil.training.challenger import gate_and_promote, train_challenger


def settings_as_of(settings: Settings, as_of: date | None) -> Settings:
    """``settings`` with the training periods moved so that the test period ends on ``as_of``."""
    if as_of is None:
        return settings
    train = settings.train
    start = as_of - timedelta(days=train.train_days + train.delay_days + train.test_days - 1)
    return build_settings(
        settings_to_dict(settings, secrets=True), [("train.train_start", start.isoformat())]
    )


class RetrainConfig(dg.Config):
    """``as_of``: last day of the test period (YYYY-MM-DD); empty keeps ``train.*`` as set."""

    as_of: str | None = None


@dg.asset(group_name="retrain", kinds={"pytorch", "onnx"})
def challenger_model(
    config: RetrainConfig,
    vigil: dg.ResourceParam[SettingsResource],
    database: dg.ResourceParam[DatabaseResource],
) -> dg.Output[dict[str, str | None]]:
    """The retrain job on data up to ``as_of``, recorded as an experiment as PUT /retrain's are."""
    as_of = date.fromisoformat(config.as_of) if config.as_of else None
    settings = settings_as_of(vigil.settings, as_of)
    with database.engine.begin() as connection:
        experiment_id = create_experiment(connection)
    outcome = run_experiment(
        database.engine, experiment_id, lambda: train_challenger(settings).outcome()
    )
    registry_version = int(outcome.metrics[REGISTRY_VERSION])
    return dg.Output(
        {
            "model": str(outcome.model_path),
            "as_of": config.as_of,
            "registry_version": str(registry_version),
            "experiment_id": str(experiment_id),
        },
        metadata={
            "model_path": dg.MetadataValue.path(str(outcome.model_path)),
            "registry_version": registry_version,
            "experiment_id": experiment_id,
        },
    )


@dg.asset(group_name="retrain", kinds={"onnx"})
def serving_model(
    challenger_model: dict[str, str | None],
    vigil: dg.ResourceParam[SettingsResource],
    database: dg.ResourceParam[DatabaseResource],
) -> dg.MaterializeResult:
    """The serving model: the challenger if the promotion gate says it is better."""
    as_of = challenger_model["as_of"]
    settings = settings_as_of(vigil.settings, date.fromisoformat(as_of) if as_of else None)
    version = challenger_model.get("registry_version")
    outcome = gate_and_promote(
        settings,
        Path(str(challenger_model["model"])),
        database.engine,
        int(version) if version else None,
    )
    return dg.MaterializeResult(
        metadata={
            "promoted": outcome.promoted,
            "reason": outcome.reason,
            "path": dg.MetadataValue.path(str(outcome.served_at)),
        }
    )
