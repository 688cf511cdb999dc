"""Deploy a finished experiment: hot swap in memory, install the file, record it.

Order matters for "no failed request": the new model is loaded and warmed beside the old
one (``ModelManager.deploy``) before anything else changes, so a model that cannot load
leaves the service exactly as it was. Only then is the file installed at
``inference.model_path`` (atomically: a restart serves the same model) and the deployment
recorded; the registry alias follows in the caller (it needs MLflow, kept off this path).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from vigil.config import TrackingConfig
from vigil.inference.errors import ModelLoadError, NotDeployable
from vigil.inference.manager import ModelManager
from vigil.inference.roles import CHAMPION
from vigil.storage import REGISTRY_VERSION, Experiment, save_deployment

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeployResult:
    """Which model now serves, and which it replaced."""

    experiment_id: int
    model_version: str
    previous_version: str
    model_path: str


def install_model(source: Path, target: Path) -> None:
    """Copy ``source`` over ``target`` atomically (temp file in the same folder, then rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(handle)
    try:
        shutil.copyfile(source, temp)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def deployable_model(experiment: Experiment) -> Path:
    """The experiment's model file; :class:`NotDeployable` unless it finished with one."""
    if experiment.status != "finished":
        raise NotDeployable(
            f"experiment {experiment.id} is {experiment.status}; only a finished one can deploy"
        )
    if experiment.model_path is None or not Path(experiment.model_path).is_file():
        raise NotDeployable(f"experiment {experiment.id} has no model file on disk")
    return Path(experiment.model_path)


def deploy_experiment(
    experiment: Experiment, models: ModelManager, serving_path: Path, engine: Engine
) -> DeployResult:
    """Swap the experiment's model in as champion, install it and record the deployment."""
    source = deployable_model(experiment)
    try:
        previous = models.deploy(source)
    except ModelLoadError as error:
        raise NotDeployable(f"experiment {experiment.id}: {error}") from error
    install_model(source, serving_path)
    current = models.snapshot().champion.model_version
    save_deployment(engine, current, str(serving_path), CHAMPION, experiment.id)
    logger.info(
        "deployed experiment %d: %s -> %s",
        experiment.id,
        previous.champion.model_version,
        current,
    )
    return DeployResult(experiment.id, current, previous.champion.model_version, str(serving_path))


def promote_in_registry(tracking: TrackingConfig, experiment: Experiment) -> int | None:
    """Point the registry's ``champion`` alias at the experiment's model version, if it has one."""
    from vigil.tracking.model_registry import ModelRegistry

    version = (experiment.metrics or {}).get(REGISTRY_VERSION)
    if version is None:
        logger.warning("experiment %d has no registered model version", experiment.id)
        return None
    ModelRegistry(tracking).set_alias(CHAMPION, int(version))
    return int(version)
