"""Experiment tracking and the model registry (MLflow), with lineage tags."""

from vigil.tracking.lineage import (
    TAG_DATA_SHA256,
    TAG_DATASET_VERSION,
    TAG_DVC_DATA_HASH,
    TAG_GIT_COMMIT,
    dataset_version,
    lineage_tags,
)
from vigil.tracking.registry import (
    CHALLENGER,
    CHAMPION,
    ModelRegistry,
    ModelVersionInfo,
    RegistryError,
    prepare_tracking_uri,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "TAG_DATASET_VERSION",
    "TAG_DATA_SHA256",
    "TAG_DVC_DATA_HASH",
    "TAG_GIT_COMMIT",
    "ModelRegistry",
    "ModelVersionInfo",
    "RegistryError",
    "dataset_version",
    "lineage_tags",
    "prepare_tracking_uri",
]
