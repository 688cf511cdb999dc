"""MLflow model registry: each trained ONNX model is a version; aliases pick the serving one.

``champion`` is the model that answers requests; ``challenger`` the newest candidate (scored
in shadow, promoted through the gate or ``POST /deploy``). Serving resolves its model through
the alias, never through a hard-coded version.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

from vigil.config import TrackingConfig
from vigil.inference.roles import ROLES

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

logger = logging.getLogger(__name__)

ALIASES = ROLES
MODEL_FILE = "model.onnx"


class RegistryError(LookupError):
    """Raised when a run, model file, version or alias cannot be found in the registry."""


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered model version, without MLflow types."""

    name: str
    version: int
    run_id: str
    source: str
    aliases: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)


def prepare_tracking_uri(uri: str) -> str:
    """Make ``uri`` usable: create a SQLite database's folder.

    A file store (``file:``) also needs ``MLFLOW_ALLOW_FILE_STORE=true``, which entry points
    set (:func:`vigil.cli.common.allow_mlflow_file_store`); this module never changes the
    environment.
    """
    if uri.startswith("sqlite:"):
        database = make_url(uri).database
        if database not in (None, "", ":memory:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    return uri


def _info(version: ModelVersion) -> ModelVersionInfo:
    return ModelVersionInfo(
        name=version.name,
        version=int(version.version),
        run_id=version.run_id or "",
        source=version.source or "",
        aliases=tuple(version.aliases or ()),
        tags=dict(version.tags or {}),
    )


class ModelRegistry:
    """The registered model named in ``tracking.registered_model`` and its aliases."""

    def __init__(self, config: TrackingConfig) -> None:
        from mlflow import MlflowClient

        self.name = config.registered_model
        self._uri = prepare_tracking_uri(config.mlflow_uri)
        self._client = MlflowClient(self._uri)

    def run_id_for(self, vigil_run_id: str) -> str:
        """The MLflow run id of the training run whose directory is named ``vigil_run_id``."""
        experiment_ids = [e.experiment_id for e in self._client.search_experiments()]
        runs = self._client.search_runs(
            experiment_ids, filter_string=f"tags.vigil_run_id = '{vigil_run_id}'", max_results=2
        )
        if len(runs) != 1:
            raise RegistryError(
                f"expected one MLflow run tagged vigil_run_id={vigil_run_id!r}, found {len(runs)}"
            )
        return str(runs[0].info.run_id)

    def _find_model_artifact(self, run_id: str) -> str | None:
        """Artifact folder of the run's ``model.onnx`` (breadth-first; "" = root), or None."""
        pending = [""]
        while pending:
            folder = pending.pop(0)
            for item in self._client.list_artifacts(run_id, folder or None):
                if item.is_dir:
                    pending.append(item.path)
                elif Path(item.path).name == MODEL_FILE:
                    return posixpath.dirname(item.path)
        return None

    def _logged_model(self, run_id: str, experiment_id: str) -> tuple[str | None, str | None]:
        """The MLflow model (ONNX flavour) the run logged: its folder and id, or Nones.

        Registering that folder makes ``models:/<name>@<alias>`` load through MLflow.
        """
        models = self._client.search_logged_models(
            experiment_ids=[experiment_id], filter_string=f"source_run_id = '{run_id}'"
        )
        if not models:
            return None, None
        newest = max(models, key=lambda m: m.creation_timestamp)
        return str(newest.artifact_location), str(newest.model_id)

    def register(
        self, run_id: str, model_file: Path | None = None, tags: Mapping[str, str] | None = None
    ) -> ModelVersionInfo:
        """Register the run's ONNX model: its logged MLflow model when it has one, else its
        ``model.onnx`` artifact (logging ``model_file`` first if the run lacks one)."""
        from mlflow.exceptions import MlflowException

        run = self._client.get_run(run_id)
        source, model_id = self._logged_model(run_id, run.info.experiment_id)
        if source is None:
            folder = self._find_model_artifact(run_id)
            if folder is None:
                if model_file is None or not model_file.exists():
                    raise RegistryError(f"run {run_id} has no {MODEL_FILE} artifact to register")
                self._client.log_artifact(run_id, str(model_file), "registry")
                folder = "registry"
            source = f"{run.info.artifact_uri.rstrip('/')}/{folder}".rstrip("/")
        try:
            self._client.get_registered_model(self.name)
        except MlflowException:
            self._client.create_registered_model(self.name)
        clean_tags = {k: str(v) for k, v in (tags or {}).items()}
        for key, value in clean_tags.items():
            self._client.set_tag(run_id, key, value)
        created = self._client.create_model_version(
            self.name, source=source, run_id=run_id, tags=clean_tags, model_id=model_id
        )
        logger.info("registered %s version %s from run %s", self.name, created.version, run_id)
        return _info(created)

    def set_alias(self, alias: str, version: int) -> None:
        """Point ``alias`` at ``version`` (moves it away from any other version)."""
        if alias not in ALIASES:
            raise RegistryError(f"unknown alias {alias!r}; expected one of {ALIASES}")
        self.get_version(version)
        self._client.set_registered_model_alias(self.name, alias, str(version))
        logger.info("alias %s -> %s version %s", alias, self.name, version)

    def get_version(self, version: int) -> ModelVersionInfo:
        """One version by number; :class:`RegistryError` when absent."""
        from mlflow.exceptions import MlflowException

        try:
            return _info(self._client.get_model_version(self.name, str(version)))
        except MlflowException:
            raise RegistryError(f"{self.name} has no version {version}") from None

    def by_alias(self, alias: str) -> ModelVersionInfo | None:
        """The version an alias points at, or None when the alias is not set."""
        from mlflow.exceptions import MlflowException

        try:
            return _info(self._client.get_model_version_by_alias(self.name, alias))
        except MlflowException:
            return None

    def versions(self) -> list[ModelVersionInfo]:
        """Every version, newest first."""
        found = self._client.search_model_versions(f"name='{self.name}'")
        return sorted((_info(v) for v in found), key=lambda v: v.version, reverse=True)

    def download(self, version: ModelVersionInfo, destination: Path) -> Path:
        """Copy the version's ONNX file into ``destination``; returns the local file."""
        from mlflow.artifacts import download_artifacts

        destination.mkdir(parents=True, exist_ok=True)
        local = download_artifacts(
            artifact_uri=f"{version.source}/{MODEL_FILE}",
            dst_path=str(destination),
            tracking_uri=self._uri,
        )
        return Path(local)

    def resolve(self, alias: str, destination: Path) -> Path:
        """Download the model the alias points at (how serving finds its model)."""
        version = self.by_alias(alias)
        if version is None:
            raise RegistryError(f"alias {alias!r} is not set on {self.name}")
        return self.download(version, destination)
