"""Where a model came from: git commit, DVC data hash and dataset version (tracking tags)."""

from __future__ import annotations

from pathlib import Path

import yaml

from vigil.config import DataConfig
from vigil.training.provenance import dataset_hash, git_commit

TAG_GIT_COMMIT = "vigil.git_commit"
TAG_DVC_DATA_HASH = "vigil.dvc_data_hash"
TAG_DATASET_VERSION = "vigil.dataset_version"
# The bytes actually trained on: differs from the DVC hash after ``PUT /add_data``.
TAG_DATA_SHA256 = "vigil.data_sha256"
UNTRACKED = "untracked"


def _dvc_lock_hash(data_dir: Path, lock_file: Path) -> str | None:
    """The md5 DVC recorded for ``data_dir`` as a stage output in ``dvc.lock``, if any."""
    if not lock_file.exists():
        return None
    lock = yaml.safe_load(lock_file.read_text()) or {}
    wanted = data_dir.resolve()
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if (lock_file.parent / out["path"]).resolve() == wanted and "md5" in out:
                return str(out["md5"])
    return None


def dvc_data_hash(data_dir: Path, lock_file: Path = Path("dvc.lock")) -> str:
    """DVC's md5 of ``data_dir`` as recorded in ``dvc.lock``; ``untracked`` when DVC has none."""
    return _dvc_lock_hash(data_dir, lock_file) or UNTRACKED


def dataset_version(config: DataConfig) -> str:
    """A readable dataset name: simulator world, seed and drift scenario."""
    drift = config.drift.scenario
    suffix = "base" if drift == "none" else f"drift-{drift}-d{config.drift.start_day}"
    return f"sim-{config.n_customers}c-{config.n_days}d-s{config.seed}-{suffix}"


def lineage_tags(config: DataConfig, data_dir: Path, repo_dir: Path = Path()) -> dict[str, str]:
    """The lineage tags every run and registered model version carries."""
    if not data_dir.exists():
        raise FileNotFoundError(f"training data {data_dir} does not exist")
    return {
        TAG_GIT_COMMIT: git_commit(repo_dir),
        TAG_DVC_DATA_HASH: dvc_data_hash(data_dir, repo_dir / "dvc.lock"),
        TAG_DATA_SHA256: dataset_hash(data_dir),
        TAG_DATASET_VERSION: dataset_version(config),
    }
