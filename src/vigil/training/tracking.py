"""MLflow tracking of one run: resolved config, per-epoch and final metrics, the run dir."""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from vigil.config import Settings, flatten, settings_to_dict
from vigil.training.trainer import EpochRecord

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

# MLflow's limits for one log_batch call.
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000


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

    The URI goes to an explicit ``MlflowClient`` (no global tracking URI, no environment
    change). A file store needs ``MLFLOW_ALLOW_FILE_STORE=true``, set by the entry points.
    Raises :class:`TrackingError` with the store's reason on any failure (never silent).
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = settings.tracking.mlflow_uri
    try:
        client = MlflowClient(tracking_uri=uri)
        name = settings.train.experiment_name
        experiment = client.get_experiment_by_name(name)
        experiment_id = (
            experiment.experiment_id if experiment is not None else client.create_experiment(name)
        )
        run = client.create_run(experiment_id, run_name=run_dir.name, tags=dict(tags))
        run_id: str = run.info.run_id
        _log_contents(client, run_id, settings, run_dir, final_metrics, history)
    except (MlflowException, OSError, ConnectionError) as error:
        raise TrackingError(
            f"could not log run {run_dir.name} to MLflow at {uri}: {error} "
            f"(the run directory {run_dir} is complete)"
        ) from error
    logger.info("logged run %s to MLflow %s (run id %s)", run_dir.name, uri, run_id)
    return run_id


def _log_contents(
    client: MlflowClient,
    run_id: str,
    settings: Settings,
    run_dir: Path,
    final_metrics: Mapping[str, float],
    history: Sequence[EpochRecord],
) -> None:
    """Parameters, epoch and final metrics, the run directory; the run ends FAILED on error."""
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    params = [Param(k, str(v)) for k, v in flatten(settings_to_dict(settings)).items()]
    metrics = [
        Metric(key, value, now, record.epoch)
        for record in history
        for key, value in (
            ("train_loss", record.train_loss),
            ("validation_loss", record.validation_loss),
            ("validation_average_precision", record.validation_average_precision),
        )
    ] + [Metric(key, float(value), now, 0) for key, value in final_metrics.items()]
    try:
        for start in range(0, len(params), MAX_PARAMS_PER_BATCH):
            client.log_batch(run_id, params=params[start : start + MAX_PARAMS_PER_BATCH])
        for start in range(0, len(metrics), MAX_METRICS_PER_BATCH):
            client.log_batch(run_id, metrics=metrics[start : start + MAX_METRICS_PER_BATCH])
        client.log_artifacts(run_id, str(run_dir))
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
