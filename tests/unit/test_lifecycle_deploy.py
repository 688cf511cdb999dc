"""Deploy: only finished experiments, a broken model changes nothing, the file is installed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from onnx_factory import logistic_model, make_metadata, save
from vigil.inference.deploy import deploy_experiment, install_model
from vigil.inference.errors import NotDeployable
from vigil.inference.follower import CHALLENGER, NO_CHALLENGER, DeploymentFollower
from vigil.inference.manager import ModelManager
from vigil.storage import (
    Experiment,
    create_db_engine,
    list_deployments,
    record_deployment,
    upgrade_database,
)

FEATURES = ["tx_amount", "tx_during_night"]


def model(path: Path, version: str) -> Path:
    return save(
        logistic_model([0.1, 0.0], -1.0, make_metadata(FEATURES, model_version=version)), path
    )


def experiment(status: str, model_path: Path | None) -> Experiment:
    now = datetime.now(UTC)
    return Experiment(
        7, status, now, now, now, {}, "run", str(model_path) if model_path else None, None
    )


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    url = f"sqlite:///{tmp_path / 'vigil.db'}"
    upgrade_database(url)
    return create_db_engine(url)


@pytest.fixture
def manager(tmp_path: Path) -> ModelManager:
    return ModelManager.from_paths(model(tmp_path / "old.onnx", "old"))


@pytest.mark.parametrize("status", ["queued", "running", "failed"])
def test_only_a_finished_experiment_deploys(
    status: str, manager: ModelManager, engine: Engine, tmp_path: Path
) -> None:
    new = model(tmp_path / "new.onnx", "new")
    with pytest.raises(NotDeployable, match=status):
        deploy_experiment(experiment(status, new), manager, tmp_path / "serving.onnx", engine)
    assert manager.snapshot().champion.model_version == "old"


def test_a_broken_model_leaves_everything_unchanged(
    manager: ModelManager, engine: Engine, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    serving = tmp_path / "serving.onnx"
    with pytest.raises(NotDeployable, match="not a loadable ONNX model"):
        deploy_experiment(experiment("finished", broken), manager, serving, engine)
    assert manager.snapshot().champion.model_version == "old"
    assert not serving.exists()
    with engine.connect() as connection:
        assert list_deployments(connection) == []


def test_deploy_swaps_installs_and_records(
    manager: ModelManager, engine: Engine, tmp_path: Path
) -> None:
    new = model(tmp_path / "new.onnx", "new")
    serving = tmp_path / "serving" / "model.onnx"
    result = deploy_experiment(experiment("finished", new), manager, serving, engine)
    assert (result.previous_version, result.model_version) == ("old", "new")
    assert manager.snapshot().champion.model_version == "new"
    assert serving.read_bytes() == new.read_bytes()
    with engine.connect() as connection:
        (recorded,) = list_deployments(connection)
    assert (recorded.model_version, recorded.experiment_id, recorded.alias) == (
        "new",
        7,
        "champion",
    )


def test_install_replaces_the_file_and_leaves_no_temp(tmp_path: Path) -> None:
    source, target = tmp_path / "a.bin", tmp_path / "dir" / "model.onnx"
    source.write_bytes(b"new")
    target.parent.mkdir()
    target.write_bytes(b"old")
    install_model(source, target)
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["model.onnx"]


def test_other_processes_follow_the_deployment(engine: Engine, tmp_path: Path) -> None:
    old = model(tmp_path / "old.onnx", "old")
    here, there = ModelManager.from_paths(old), ModelManager.from_paths(old)
    follower = DeploymentFollower(engine, there)
    assert not follower.check_once()

    new = model(tmp_path / "new.onnx", "new")
    deploy_experiment(experiment("finished", new), here, tmp_path / "serving.onnx", engine)

    assert follower.check_once()
    assert there.snapshot().champion.model_version == "new"
    assert not follower.check_once()
    late = DeploymentFollower(engine, ModelManager.from_paths(old))  # history is not replayed
    assert not late.check_once()


def test_other_processes_follow_the_challenger_and_its_removal(
    engine: Engine, tmp_path: Path
) -> None:
    champion = model(tmp_path / "champion.onnx", "champion-1")
    shadow = model(tmp_path / "shadow.onnx", "shadow-2")
    there = ModelManager.from_paths(champion)
    follower = DeploymentFollower(engine, there)
    with engine.begin() as connection:
        record_deployment(connection, "shadow-2", str(shadow), CHALLENGER)
    assert follower.check_once()
    snapshot = there.snapshot()
    assert snapshot.challenger is not None
    assert snapshot.challenger.model_version == "shadow-2"
    assert snapshot.champion.model_version == "champion-1"  # the champion is untouched
    assert not follower.check_once()

    with engine.begin() as connection:
        record_deployment(connection, NO_CHALLENGER, NO_CHALLENGER, CHALLENGER)
    assert follower.check_once()
    assert there.snapshot().challenger is None
