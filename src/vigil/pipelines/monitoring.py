"""Monitoring assets: Evidently drift and delayed-label performance marts."""

from collections.abc import Iterator

import dagster as dg

from vigil.pipelines.etl import feature_mart
from vigil.pipelines.partitions import DAILY
from vigil.pipelines.resources import DatabaseResource, SettingsResource, partition_day
from vigil.pipelines.scoring import batch_scores
from vigil.pipelines.steps import NoDataInWindow, drift_for_day, performance_for_day

DATASET_DRIFT = "dataset_drift"


@dg.asset(
    group_name="monitoring",
    partitions_def=DAILY,
    deps=[feature_mart, batch_scores],
    output_required=False,
)
def feature_drift(
    context: dg.AssetExecutionContext, vigil: dg.ResourceParam[SettingsResource]
) -> Iterator[dg.MaterializeResult]:
    """Drift of the current window against the reference window (Evidently report + JSON)."""
    try:
        result = drift_for_day(vigil.settings, partition_day(context.partition_key))
    except NoDataInWindow as error:  # the first days of the data have nothing to compare with
        context.log.warning(f"no drift report for {context.partition_key}: {error}")
        return
    yield dg.MaterializeResult(
        metadata={
            DATASET_DRIFT: result.dataset_drift,
            "drifted_share": result.drifted_share,
            "drifted_columns": ", ".join(result.drifted_columns) or "none",
            "reference_rows": result.reference_rows,
            "current_rows": result.current_rows,
        }
    )


@dg.asset(group_name="monitoring", partitions_def=DAILY)
def delayed_label_performance(
    context: dg.AssetExecutionContext,
    vigil: dg.ResourceParam[SettingsResource],
    database: dg.ResourceParam[DatabaseResource],
) -> dg.MaterializeResult:
    """Stored decisions judged by the labels that arrived: AP, CP@k, losses, false alarms."""
    report = performance_for_day(
        vigil.settings, database.engine, partition_day(context.partition_key)
    )
    return dg.MaterializeResult(
        metadata={
            "labelled": report.n_labelled,
            "frauds": report.n_frauds,
            "average_precision": report.average_precision,
            "prevented_loss": report.business.prevented_loss,
            "missed_fraud_loss": report.business.missed_fraud_loss,
            "false_alarms": report.business.false_alarms,
            "expected_cost": report.business.expected_cost,
        }
    )
