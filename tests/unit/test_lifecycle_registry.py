"""Model registry: versions with lineage tags, champion/challenger aliases, alias resolution."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from vigil.cli import app
from vigil.config import TrackingConfig
from vigil.inference.roles import CHALLENGER, CHAMPION
from vigil.redaction import mask_url
from vigil.tracking.lineage import TAG_DATASET_VERSION, dvc_data_hash
from vigil.tracking.model_registry import ModelRegistry, RegistryError


@pytest.fixture
def tracking(tmp_path: Path) -> TrackingConfig:
    return TrackingConfig(mlflow_uri=f"file:{tmp_path / 'mlruns'}", registered_model="test-model")


def log_run(tracking: TrackingConfig, model_bytes: bytes, tmp_path: Path) -> str:
    """A finished MLflow run holding ``model.onnx`` (as training logs it) and its run-dir tag."""
    import mlflow

    model = tmp_path / "model.onnx"
    model.write_bytes(model_bytes)
    mlflow.set_tracking_uri(tracking.mlflow_uri)
    with mlflow.start_run() as run:
        mlflow.set_tag("vigil_run_id", f"dir-{model_bytes.decode()}")
        mlflow.log_artifact(str(model))
    return str(run.info.run_id)


def test_register_alias_and_resolve(tracking: TrackingConfig, tmp_path: Path) -> None:
    registry = ModelRegistry(tracking)
    first = log_run(tracking, b"one", tmp_path)
    second = log_run(tracking, b"two", tmp_path)

    v1 = registry.register(first, tags={TAG_DATASET_VERSION: "sim-base"})
    v2 = registry.register(second)
    registry.set_alias(CHAMPION, v1.version)
    registry.set_alias(CHALLENGER, v2.version)

    assert (v1.version, v2.version) == (1, 2)
    champion = registry.by_alias(CHAMPION)
    assert champion is not None
    assert champion.tags[TAG_DATASET_VERSION] == "sim-base"
    assert registry.resolve(CHAMPION, tmp_path / "a").read_bytes() == b"one"
    assert registry.resolve(CHALLENGER, tmp_path / "b").read_bytes() == b"two"
    assert registry.run_id_for("dir-two") == second

    registry.set_alias(CHAMPION, v2.version)  # promotion moves the alias
    assert registry.resolve(CHAMPION, tmp_path / "c").read_bytes() == b"two"
    assert [v.version for v in registry.versions()] == [2, 1]


def test_show_on_an_empty_registry_names_the_command_that_registers(tmp_path: Path) -> None:
    """Right after `make demo` nothing is registered (training only logs runs): `vigil
    registry show` says so and how to register, not an empty table."""
    uri = f"file:{tmp_path / 'mlruns'}"
    result = CliRunner().invoke(app, ["registry", "show", "--set", f"tracking.mlflow_uri={uri}"])
    assert result.exit_code == 0, result.output
    assert "no version yet" in result.output
    assert "`vigil registry register` registers the newest" in result.output


def test_show_on_an_empty_registry_masks_the_tracking_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The message names the tracking URI as every dump does: its password masked."""
    monkeypatch.setattr(ModelRegistry, "versions", lambda self: [])
    uri = "http://vigil:s3cr3t@127.0.0.1:9/"
    result = CliRunner().invoke(app, ["registry", "show", "--set", f"tracking.mlflow_uri={uri}"])
    assert result.exit_code == 0, result.output
    assert "s3cr3t" not in result.output and mask_url(uri) in result.output


def test_unknown_version_alias_or_run_is_an_error(tracking: TrackingConfig, tmp_path: Path) -> None:
    registry = ModelRegistry(tracking)
    assert registry.by_alias(CHAMPION) is None
    with pytest.raises(RegistryError, match="not set"):
        registry.resolve(CHAMPION, tmp_path)
    with pytest.raises(RegistryError, match="no version 7"):
        registry.set_alias(CHAMPION, 7)
    with pytest.raises(RegistryError, match="unknown alias"):
        registry.set_alias("staging", 1)
    with pytest.raises(RegistryError, match="vigil_run_id"):
        registry.run_id_for("missing")


def test_dvc_hash_comes_from_dvc_lock(tmp_path: Path) -> None:
    data = tmp_path / "data" / "raw"
    data.mkdir(parents=True)
    lock = tmp_path / "dvc.lock"
    lock.write_text(
        yaml.safe_dump(
            {"stages": {"extract_data": {"outs": [{"path": "data/raw", "md5": "abc123.dir"}]}}}
        )
    )
    assert dvc_data_hash(data, lock) == "abc123.dir"
    assert dvc_data_hash(tmp_path / "elsewhere", lock) == "untracked"
    assert dvc_data_hash(data, tmp_path / "no.lock") == "untracked"
