"""MLflow tracking of one run: resolved config, per-epoch and final metrics, the run dir."""

from __future__ import annotations

import logging
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from vigil.config import Settings, flatten, settings_to_dict
from vigil.data.schema import TX_FRAUD
from vigil.training.artifacts import ONNX_FILE
from vigil.training.trainer import EpochRecord

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

# MLflow's limits for one log_batch call.
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000


# The logged model's name (an MLflow 3 "logged model" of the run); the registry registers it.
MODEL_NAME = "model"
INPUT_EXAMPLE_ROWS = 5
# Rows of a dataset MLflow is given: its digest reads that many, and its profile and schema
# inference walk every row given (pandas' `map(type)` over every cell: gigabytes at millions).
TRACKED_ROWS = 10_000
ROWS_TAG = "vigil.rows"  # the dataset input's tag holding the whole dataset's row count


@dataclass(frozen=True)
class RunDataset:
    """A dataset a run used (``context``: training / validation / testing), with its features.

    ``frame`` may be the dataset's first rows only (a streamed run's test set); ``rows`` is
    then the whole dataset's row count (None: the frame is the whole dataset).
    """

    name: str
    context: str
    source: str
    frame: pd.DataFrame
    rows: int | None = None

    @property
    def total_rows(self) -> int:
        """Rows of the whole dataset."""
        return len(self.frame) if self.rows is None else self.rows


@dataclass(frozen=True)
class RunOutputs:
    """What a run logs besides params, metrics and files: datasets and the model's inputs."""

    datasets: Sequence[RunDataset]
    feature_columns: Sequence[str]


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
    datasets: Sequence[RunDataset] = (),
    feature_columns: Sequence[str] = (),
) -> str:
    """Log the run to ``tracking.mlflow_uri``; returns the MLflow run id.

    Besides params, metrics and the run directory, the run logs its datasets (with MLflow's
    digests) and the ONNX model as an ``onnx``-flavour MLflow model, whose signature and input
    example are the ``feature_columns`` of the first dataset.

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
        outputs = RunOutputs(datasets, feature_columns)
        _log_contents(client, run_id, settings, run_dir, final_metrics, history, outputs)
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
    outputs: RunOutputs,
) -> None:
    """Parameters, epoch and final metrics, the run directory, datasets and model; the run
    ends FAILED on error."""
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
        if outputs.datasets:
            _log_datasets(client, run_id, outputs.datasets)
            example = outputs.datasets[0].frame[list(outputs.feature_columns)]
            _log_model(client, run_id, run_dir / ONNX_FILE, example)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")


def _log_datasets(client: MlflowClient, run_id: str, datasets: Sequence[RunDataset]) -> None:
    """Each dataset with its digest, schema and context (shown in the UI's Datasets column).

    MLflow is given the first :data:`TRACKED_ROWS` rows; the whole dataset's row count is
    the input's ``vigil.rows`` tag and part of the digest (:func:`_digest`).
    """
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.entities import DatasetInput, InputTag

    inputs = []
    with warnings.catch_warnings():
        # MLflow warns that a local path matches two (identical) local source types, and that
        # integer columns cannot hold missing values: neither applies to a logged dataset.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\.")
        for d in datasets:
            head = d.frame.head(TRACKED_ROWS)
            digest = _digest(head, d.total_rows)
            dataset = from_pandas(
                head, source=d.source, name=d.name, targets=TX_FRAUD, digest=digest
            )
            context = InputTag("mlflow.data.context", d.context)
            rows = InputTag(ROWS_TAG, str(d.total_rows))
            inputs.append(DatasetInput(dataset._to_mlflow_entity(), tags=[context, rows]))
    client.log_inputs(run_id, datasets=inputs)


def _digest(head: pd.DataFrame, rows: int) -> str:
    """MLflow's digest of a dataset's first rows, salted with the whole dataset's row count.

    MLflow's own digest hashes the first 10,000 rows and the frame's length: given only the
    head, two datasets alike in their first rows (the same fitting start, other end days)
    would share a digest, and MLflow would take them for one dataset.
    """
    from mlflow.data.digest_utils import compute_pandas_digest, get_normalized_md5_digest

    return get_normalized_md5_digest([compute_pandas_digest(head).encode(), np.int64(rows)])


def _log_model(client: MlflowClient, run_id: str, model_file: Path, features: pd.DataFrame) -> None:
    """The ONNX model as a logged MLflow model of the run (``onnx`` flavour, ``pyfunc``)."""
    import mlflow.onnx
    import onnx
    from mlflow.entities import LoggedModelOutput

    example = features.head(INPUT_EXAMPLE_ROWS).astype("float64").reset_index(drop=True)
    experiment_id = client.get_run(run_id).info.experiment_id
    logged = client.create_logged_model(experiment_id, name=MODEL_NAME, source_run_id=run_id)
    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder) / MODEL_NAME
        mlflow.onnx.save_model(
            onnx.load(str(model_file)),
            str(local),
            input_example=example,
            save_as_external_data=False,
            onnx_execution_providers=["CPUExecutionProvider"],
        )
        client.log_model_artifacts(logged.model_id, str(local))
    client.finalize_logged_model(logged.model_id, "READY")
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
