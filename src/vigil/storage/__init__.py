"""Persistence: SQLAlchemy Core tables, Alembic migrations, repositories, group commit."""

from vigil.storage.engine import create_db_engine, ping
from vigil.storage.errors import (
    DatabaseUnavailable,
    RecordRejected,
    StorageError,
    WriterClosed,
    WriterOverloaded,
)
from vigil.storage.lifecycle import (
    REGISTRY_VERSION,
    create_experiment,
    fail_experiment,
    finish_experiment,
    get_experiment,
    latest_deployment,
    list_deployments,
    list_experiments,
    mark_experiment_running,
    record_deployment,
    save_deployment,
)
from vigil.storage.migrate import upgrade_database
from vigil.storage.records import Deployment, Experiment, LabelRecord, PredictionRecord
from vigil.storage.repository import (
    count_rows,
    fetch_labels,
    fetch_prediction,
    fetch_predictions,
    fetch_transactions,
    insert_labels,
    insert_prediction_records,
    recent_predictions,
)
from vigil.storage.writer import CommitObserver, GroupCommitWriter

__all__ = [
    "REGISTRY_VERSION",
    "CommitObserver",
    "DatabaseUnavailable",
    "Deployment",
    "Experiment",
    "GroupCommitWriter",
    "LabelRecord",
    "PredictionRecord",
    "RecordRejected",
    "StorageError",
    "WriterClosed",
    "WriterOverloaded",
    "count_rows",
    "create_db_engine",
    "create_experiment",
    "fail_experiment",
    "fetch_labels",
    "fetch_prediction",
    "fetch_predictions",
    "fetch_transactions",
    "finish_experiment",
    "get_experiment",
    "insert_labels",
    "insert_prediction_records",
    "latest_deployment",
    "list_deployments",
    "list_experiments",
    "mark_experiment_running",
    "ping",
    "recent_predictions",
    "record_deployment",
    "save_deployment",
    "upgrade_database",
]
