"""Jobs, schedule, sensors and the ``Definitions`` Dagster loads.

``dagster dev -m vigil.pipelines.definitions`` (or ``vigil pipelines dev``) serves them;
``vigil pipelines run daily --date D`` runs a job in-process. The configuration comes from
``VIGIL_CONFIG`` (default ``configs/vigil.yaml``) and ``VIGIL_*`` variables.
"""

from __future__ import annotations

import os

import dagster as dg

from vigil.cli.common import allow_mlflow_file_store
from vigil.config import DEFAULT_CONFIG_PATH, Settings, load_settings
from vigil.pipelines import etl, monitoring, retrain, scoring
from vigil.pipelines.maintenance import maintenance_schedule, storage_maintenance
from vigil.pipelines.partitions import DAILY
from vigil.pipelines.resources import build_resources
from vigil.pipelines.sensors import build_sensors

DAILY_JOB = "daily"
RETRAIN_JOB = "retrain"

ASSET_MODULES = (etl, scoring, monitoring, retrain)


def build_definitions(settings: Settings) -> dg.Definitions:
    """Every asset, job, schedule and sensor, with ``settings`` as their resources."""
    assets = dg.load_assets_from_modules(list(ASSET_MODULES))
    daily_job = dg.define_asset_job(
        DAILY_JOB,
        selection=dg.AssetSelection.groups("etl", "scoring", "monitoring"),
        partitions_def=DAILY,
        description="Raw partition -> contract -> features -> batch scores -> drift, performance.",
    )
    retrain_job = dg.define_asset_job(
        RETRAIN_JOB,
        selection=dg.AssetSelection.groups("retrain"),
        description="Train a challenger, promote it only through the promotion gate.",
    )
    daily_schedule = dg.build_schedule_from_partitioned_job(daily_job, hour_of_day=2)
    return dg.Definitions(
        assets=assets,
        jobs=[daily_job, retrain_job, storage_maintenance],
        schedules=[daily_schedule, maintenance_schedule],
        sensors=build_sensors(daily_job, retrain_job),
        resources=build_resources(settings),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Dagster's entry point: settings from ``VIGIL_CONFIG`` and the environment."""
    settings = load_settings(DEFAULT_CONFIG_PATH, environ=os.environ)
    allow_mlflow_file_store(settings, os.environ)
    return build_definitions(settings)
