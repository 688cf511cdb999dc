"""Storage maintenance job: PostgreSQL day partitions created ahead, old ones dropped."""

import dagster as dg

from vigil.pipelines.resources import DatabaseResource, SettingsResource
from vigil.storage.partitions import maintain_partitions

MAINTENANCE_JOB = "storage_maintenance"


@dg.op
def maintain_day_partitions(
    context: dg.OpExecutionContext,
    vigil: dg.ResourceParam[SettingsResource],
    database: dg.ResourceParam[DatabaseResource],
) -> None:
    """``vigil db maintain``: partitions ``storage.partition_days_ahead`` days ahead, days past
    ``storage.retention_days`` dropped (nothing to do on SQLite)."""
    storage = vigil.settings.storage
    report = maintain_partitions(
        database.engine, storage.partition_days_ahead, storage.retention_days
    )
    context.log.info(f"partitions created {report.created}, dropped {report.dropped}")


@dg.job(name=MAINTENANCE_JOB, description="Create day partitions ahead, drop expired ones.")
def storage_maintenance() -> None:
    """The one-op maintenance job."""
    maintain_day_partitions()


maintenance_schedule = dg.ScheduleDefinition(
    name="storage_maintenance_schedule", job=storage_maintenance, cron_schedule="15 0 * * *"
)
"""Daily at 00:15 UTC: the new day's partition exists long before (``partition_days_ahead``)."""
