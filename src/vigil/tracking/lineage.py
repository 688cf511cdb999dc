"""Where a model came from: git commit, DVC data hash and dataset version (tracking tags)."""

from __future__ import annotations

from pathlib import Path

import yaml

from vigil.data.origin import recorded_world
from vigil.training.provenance import git_commit

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


def dataset_version(data: Path, data_sha256: str) -> str:
    """A readable name of the data itself, never of a configuration.

    ``sim-<customers>c-<terminals>t-<days>d-s<seed>-<base | drift-<scenario>-d<start day>>``
    when all its Parquet files record one simulated world (``vigil generate`` writes it into
    them), else ``external-<first 12 hex of data_sha256>`` (its SHA-256,
    :func:`vigil.training.provenance.dataset_hash`): published data, rows added by
    ``PUT /add_data``, feature tables.
    """
    world = recorded_world(data)
    return world.name if world is not None else f"external-{data_sha256[:12]}"


def lineage_tags(data: Path, data_sha256: str, repo_dir: Path = Path()) -> dict[str, str]:
    """The lineage tags every registered run and model version carries: ``data`` is what the
    run trained on and ``data_sha256`` its hash as the run recorded it."""
    if not data.exists():
        raise FileNotFoundError(f"training data {data} does not exist")
    return {
        TAG_GIT_COMMIT: git_commit(repo_dir),
        TAG_DVC_DATA_HASH: dvc_data_hash(data, repo_dir / "dvc.lock"),
        TAG_DATA_SHA256: data_sha256,
        TAG_DATASET_VERSION: dataset_version(data, data_sha256),
    }
