"""MLflow tracking of one run: resolved config, per-epoch and final metrics, the run dir."""

from __future__ import annotations

import logging
import os
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from vigil.config import Settings, flatten, settings_to_dict
from vigil.training.trainer import EpochRecord

logger = logging.getLogger(__name__)


class TrackingError(RuntimeError):
    """The MLflow tracking store could not be reached or refused the run."""


def check_reachable(uri: str, timeout_seconds: float = 3.0) -> None:
    """Fail fast (before training) when an HTTP tracking server does not answer ``/health``."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_seconds):
            pass
    except (urllib.error.URLError, OSError) as error:
        raise TrackingError(f"MLflow tracking server {uri} is not reachable: {error}") from error


def log_run(
    settings: Settings,
    run_dir: Path,
    final_metrics: Mapping[str, float],
    history: Sequence[EpochRecord],
    tags: Mapping[str, str],
) -> str:
    """Log the run to ``tracking.mlflow_uri``; returns the MLflow run id.

    Raises :class:`TrackingError` with the store's reason on any failure (never silent).
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = settings.tracking.mlflow_uri
    if uri.startswith("file:"):
        # The embedded default (DESIGN: "MLflow file store"); MLflow 3 wants an explicit opt-in.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(settings.train.experiment_name)
        with mlflow.start_run(run_name=run_dir.name) as run:
            mlflow.set_tags(dict(tags))
            mlflow.log_params(flatten(settings_to_dict(settings)))
            for record in history:
                mlflow.log_metrics(
                    {
                        "train_loss": record.train_loss,
                        "validation_loss": record.validation_loss,
                        "validation_average_precision": record.validation_average_precision,
                    },
                    step=record.epoch,
                )
            mlflow.log_metrics(dict(final_metrics))
            mlflow.log_artifacts(str(run_dir))
            run_id: str = run.info.run_id
    except (MlflowException, OSError, ConnectionError) as error:
        raise TrackingError(
            f"could not log run {run_dir.name} to MLflow at {uri}: {error} "
            f"(the run directory {run_dir} is complete)"
        ) from error
    logger.info("logged run %s to MLflow %s (run id %s)", run_dir.name, uri, run_id)
    return run_id
