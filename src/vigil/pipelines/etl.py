"""ETL assets: raw partition checked against the contract, then the feature mart."""

import dagster as dg

from vigil.pipelines.partitions import DAILY
from vigil.pipelines.resources import SettingsResource, partition_day
from vigil.pipelines.steps import build_feature_mart, check_raw_day


@dg.asset(group_name="etl", partitions_def=DAILY, kinds={"parquet"})
def raw_transactions(
    context: dg.AssetExecutionContext, vigil: dg.ResourceParam[SettingsResource]
) -> dg.MaterializeResult:
    """The day's raw Parquet partition, validated against the transaction contract."""
    report = check_raw_day(vigil.settings, partition_day(context.partition_key))
    return dg.MaterializeResult(
        metadata={
            "rows": report.rows,
            "fraud_rate": report.fraud_rate,
            "duplicate_ids": report.duplicate_ids,
        }
    )


@dg.asset(group_name="etl", partitions_def=DAILY, deps=[raw_transactions], kinds={"duckdb"})
def feature_mart(
    context: dg.AssetExecutionContext, vigil: dg.ResourceParam[SettingsResource]
) -> dg.MaterializeResult:
    """Point-in-time features of the monitoring horizon up to the day, one file per day."""
    summary = build_feature_mart(vigil.settings, partition_day(context.partition_key))
    return dg.MaterializeResult(
        metadata={
            "rows": summary.rows,
            "days": len(summary.days),
            "first_day": summary.days[0].isoformat(),
            "path": dg.MetadataValue.path(str(summary.paths[-1])),
        }
    )
