"""ModelManager: hot swaps under load never fail a request or mislabel its model."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from onnx_factory import logistic_model, make_metadata, save
from vigil.inference.decision import decide
from vigil.inference.errors import ModelLoadError
from vigil.inference.manager import ModelManager

NAMES = ["tx_amount", "tx_during_night"]
ROWS = np.array([[100.0, 1.0], [20.0, 0.0], [60.0, 1.0]], dtype=np.float32)
MODELS = {"v1": ([0.01, 1.0], -2.0), "v2": ([0.03, -0.5], -1.0)}


def _expected(version: str) -> np.ndarray:
    weights, bias = MODELS[version]
    return 1 / (1 + np.exp(-(ROWS @ np.float32(weights) + bias)))


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, Path]:
    return {
        version: save(
            logistic_model(weights, bias, make_metadata(NAMES, model_version=version)),
            tmp_path / f"{version}.onnx",
        )
        for version, (weights, bias) in MODELS.items()
    }


def test_swaps_under_load_keep_every_answer_consistent(paths: dict[str, Path]) -> None:
    manager = ModelManager.from_paths(paths["v1"])
    done = threading.Event()
    answers: list[tuple[set[str], list[float]]] = []
    failures: list[BaseException] = []

    def serve() -> None:
        while not done.is_set():
            try:
                snapshot = manager.snapshot()
                decisions = decide(snapshot.champion, [1, 2, 3], ROWS, reason_codes=1)
            except BaseException as error:  # recorded, then asserted on below
                failures.append(error)
                return
            answers.append(({d.model_version for d in decisions}, [d.score for d in decisions]))

    readers = [threading.Thread(target=serve) for _ in range(2)]
    for reader in readers:
        reader.start()
    for i in range(30):
        manager.deploy(paths["v2" if i % 2 == 0 else "v1"])
    done.set()
    for reader in readers:
        reader.join(timeout=10)

    assert failures == []
    assert all(len(versions) == 1 for versions, _ in answers)  # one model per answer
    assert set().union(*(versions for versions, _ in answers)) == {"v1", "v2"}
    for versions, scores in answers:
        np.testing.assert_allclose(scores, _expected(next(iter(versions))), atol=1e-6)


def test_failed_deploy_keeps_the_current_champion(paths: dict[str, Path], tmp_path: Path) -> None:
    manager = ModelManager.from_paths(paths["v1"])
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(paths["v2"].read_bytes()[:100])
    with pytest.raises(ModelLoadError, match="not a loadable ONNX model"):
        manager.deploy(broken)
    assert manager.snapshot().champion.model_version == "v1"


def test_challenger_is_set_and_removed(paths: dict[str, Path]) -> None:
    manager = ModelManager.from_paths(paths["v1"])
    previous = manager.set_challenger(paths["v2"])
    before = manager.snapshot()
    assert previous.challenger is None
    assert before.challenger is not None and before.challenger.model_version == "v2"
    assert before.champion.model_version == "v1"
    assert manager.set_challenger(None) is before
    assert manager.snapshot().challenger is None
    assert manager.snapshot().champion.model_version == "v1"


def test_models_needing_unavailable_features_are_refused(paths: dict[str, Path]) -> None:
    manager = ModelManager.from_paths(paths["v1"], available_features=NAMES)
    other = paths["v2"].with_name("other.onnx")
    save(logistic_model([1.0], 0.0, make_metadata(["mystery_feature"])), other)
    with pytest.raises(ModelLoadError, match=r"does not compute: \['mystery_feature'\]"):
        manager.deploy(other)
    assert manager.snapshot().champion.model_version == "v1"
