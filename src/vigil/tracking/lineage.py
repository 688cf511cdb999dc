"""Where a model came from: git commit, DVC data hash and dataset version (tracking tags)."""

from __future__ import annotations

import hashlib
import logging
import subprocess
from pathlib import Path

import yaml

from vigil.config import DataConfig

logger = logging.getLogger(__name__)

TAG_GIT_COMMIT = "vigil.git_commit"
TAG_DVC_DATA_HASH = "vigil.dvc_data_hash"
TAG_DATASET_VERSION = "vigil.dataset_version"
# The bytes actually trained on: differs from the DVC hash after ``PUT /add_data``.
TAG_DATA_SHA256 = "vigil.data_sha256"
UNKNOWN = "unknown"
UNTRACKED = "untracked"


def git_commit(repo_dir: Path = Path()) -> str:
    """``HEAD`` commit, suffixed ``-dirty`` when tracked files changed; ``unknown`` off git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo_dir, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo_dir,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        logger.warning("not a git checkout (or git missing): git commit recorded as %r", UNKNOWN)
        return UNKNOWN
    return f"{head}-dirty" if dirty else head


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


def content_hash(data_dir: Path) -> str:
    """A sha256 over every file's relative path and bytes under ``data_dir`` (sorted)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        digest.update(path.relative_to(data_dir).as_posix().encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


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
        TAG_DATA_SHA256: content_hash(data_dir),
        TAG_DATASET_VERSION: dataset_version(config),
    }
