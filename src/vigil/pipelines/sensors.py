"""Sensors: a new raw day partition starts the daily job; dataset drift starts a retrain."""

import re
from pathlib import Path
from typing import Any

import dagster as dg

from vigil.data.schema import TX_DATE
from vigil.pipelines.monitoring import DATASET_DRIFT, feature_drift
from vigil.pipelines.resources import SettingsResource

RAW_PARTITION = re.compile(rf"^{TX_DATE}=(\d{{4}}-\d{{2}}-\d{{2}})$")
MAX_DAYS_PER_TICK = 7


def new_raw_days(raw_dir: Path, after: str | None, limit: int = MAX_DAYS_PER_TICK) -> list[str]:
    """Days (``YYYY-MM-DD``, oldest first) of raw partitions later than ``after``."""
    if not raw_dir.is_dir():
        return []
    days = sorted(
        match.group(1)
        for path in raw_dir.iterdir()
        if path.is_dir() and (match := RAW_PARTITION.match(path.name))
    )
    return [d for d in days if after is None or d > after][:limit]


def retrain_request(
    partition_key: str | None, dataset_drift: bool, enabled: bool
) -> dg.RunRequest | dg.SkipReason:
    """A retrain run up to the drifted day, or why there is none."""
    if not enabled:
        return dg.SkipReason("monitoring.retrain_on_drift is off")
    if not dataset_drift:
        return dg.SkipReason(f"no dataset drift on {partition_key}")
    return dg.RunRequest(
        run_key=f"drift-{partition_key}",
        run_config={"ops": {"challenger_model": {"config": {"as_of": partition_key}}}},
        tags={"vigil/trigger": "drift"},
    )


def build_sensors(daily_job: Any, retrain_job: Any) -> list[dg.SensorDefinition]:
    """The two sensors, bound to their jobs (``define_asset_job`` results)."""

    @dg.sensor(job=daily_job, minimum_interval_seconds=60)
    def raw_partition_sensor(
        context: dg.SensorEvaluationContext, vigil: dg.ResourceParam[SettingsResource]
    ) -> dg.SensorResult:
        """Requests the daily job for each raw day partition not seen before."""
        days = new_raw_days(vigil.settings.data.raw_dir, context.cursor)
        requests = [dg.RunRequest(run_key=f"daily-{d}", partition_key=d) for d in days]
        return dg.SensorResult(run_requests=requests, cursor=days[-1] if days else context.cursor)

    @dg.asset_sensor(asset_key=feature_drift.key, job=retrain_job)
    def drift_retrain_sensor(
        context: dg.SensorEvaluationContext,
        asset_event: dg.EventLogEntry,
        vigil: dg.ResourceParam[SettingsResource],
    ) -> dg.RunRequest | dg.SkipReason:
        """Requests a retrain when a drift report finds dataset drift."""
        materialization = asset_event.asset_materialization
        if materialization is None:
            return dg.SkipReason("event without a materialization")
        value = materialization.metadata.get(DATASET_DRIFT)
        drifted = bool(value.value) if value is not None else False
        enabled = vigil.settings.monitoring.retrain_on_drift
        return retrain_request(materialization.partition, drifted, enabled)

    return [raw_partition_sensor, drift_retrain_sensor]
