"""Scoring asset: the serving model's batch decisions on the day's transactions."""

import dagster as dg

from vigil.pipelines.etl import feature_mart
from vigil.pipelines.partitions import DAILY
from vigil.pipelines.resources import SettingsResource, partition_day
from vigil.pipelines.steps import score_day


@dg.asset(group_name="scoring", partitions_def=DAILY, deps=[feature_mart], kinds={"onnx"})
def batch_scores(
    context: dg.AssetExecutionContext, vigil: dg.ResourceParam[SettingsResource]
) -> dg.MaterializeResult:
    """The serving ONNX model's score and decision for each of the day's transactions."""
    summary = score_day(vigil.settings, partition_day(context.partition_key))
    return dg.MaterializeResult(
        metadata={
            "rows": summary.rows,
            "flagged": summary.flagged,
            "model_version": summary.model_version,
            "path": dg.MetadataValue.path(str(summary.output_path)),
        }
    )
