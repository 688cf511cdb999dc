"""The ``ensemble`` kind: mean of members in-process, one ONNX graph with the same contract."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from vigil.config import ModelConfig, build_settings
from vigil.inference.metadata import ModelMetadata
from vigil.inference.scorer import OnnxScorer
from vigil.models.baselines import fit_lightgbm
from vigil.models.export_onnx import export_onnx
from vigil.models.kinds import Ensemble, model_kind, predict_scores
from vigil.models.mlp import FraudMLP
from vigil.training.run import fit_model
from vigil.training.trainer import Dataset

N_FEATURES = 5
NAMES = [f"f{i}" for i in range(N_FEATURES)]


def _rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.normal(0, 3, size=(n, N_FEATURES)).astype(np.float32)
    labels = (features[:, 0] + rng.normal(0, 1, n) > 4).astype(np.int8)
    return features, labels


def _mlp(seed: int, features: np.ndarray) -> FraudMLP:
    torch.manual_seed(seed)
    model = FraudMLP.from_config(ModelConfig(hidden_sizes=[8]), N_FEATURES)
    model.fit_scaler(features)
    return model.eval()


def _metadata(version: str) -> ModelMetadata:
    return ModelMetadata(
        model_version=version,
        model_kind="ensemble",
        experiment_name="test",
        git_commit="unknown",
        saved_at=datetime.now(UTC),
        feature_names=NAMES,
        feature_means=[0.0] * N_FEATURES,
        threshold=0.5,
        metrics={"average_precision": 0.5},
    )


@pytest.fixture(scope="module")
def ensemble() -> Ensemble:
    features, labels = _rows(2000, 0)
    config = ModelConfig.model_validate({"lightgbm": {"n_estimators": 30, "num_leaves": 7}})
    booster = fit_lightgbm(
        features[:1000], labels[:1000], (features[1000:], labels[1000:]), config, False, 0
    )
    return Ensemble(members=(_mlp(0, features), _mlp(1, features), booster))


def test_scores_are_the_mean_of_the_members(ensemble: Ensemble) -> None:
    rows = np.array([[3.0, 0.0, 1.0, -1.0, 2.0], [-2.0, 1.0, 0.0, 0.0, 0.0]], np.float32)
    members = np.stack([predict_scores(member, rows) for member in ensemble.members])
    np.testing.assert_allclose(predict_scores(ensemble, rows), members.mean(axis=0), rtol=1e-6)
    assert model_kind(ensemble) == "ensemble"


@pytest.mark.parametrize("mlp_only", [False, True])
def test_onnx_graph_matches_the_ensemble(
    ensemble: Ensemble, mlp_only: bool, tmp_path: Path
) -> None:
    if mlp_only:  # the fixture's two MLPs without its LightGBM
        ensemble = Ensemble(members=ensemble.members[:2])
    path = tmp_path / "model.onnx"
    export_onnx(ensemble, N_FEATURES, _metadata("test-ensemble"), path)
    rows = np.random.default_rng(1).normal(0, 5, size=(500, N_FEATURES)).astype(np.float32)
    scorer = OnnxScorer.load(path)  # the serving loader checks the contract and metadata
    np.testing.assert_allclose(scorer.score(rows), predict_scores(ensemble, rows), atol=1e-5)
    assert scorer.metadata.model_kind == "ensemble"
    session = onnxruntime.InferenceSession(str(path))
    assert [i.name for i in session.get_inputs()] == ["features"]
    assert [(o.name, len(o.shape)) for o in session.get_outputs()] == [("score", 1)]


@pytest.mark.parametrize(
    ("with_lightgbm", "kinds"),
    [(True, ["mlp", "mlp", "lightgbm"]), (False, ["mlp", "mlp"])],
)
def test_fit_model_builds_one_mlp_per_seed_and_lightgbm_if_asked(
    tmp_path: Path, with_lightgbm: bool, kinds: list[str]
) -> None:
    settings = build_settings(
        {
            "model": {
                "kind": "ensemble",
                "hidden_sizes": [4],
                "ensemble_mlp_seeds": [3, 4],
                "ensemble_lightgbm": with_lightgbm,
                "lightgbm": {"n_estimators": 10},
            },
            "train": {"epochs": 1},
        }
    )
    model, history = fit_model(settings, Dataset(*_rows(600, 1)), Dataset(*_rows(300, 2)), tmp_path)
    assert isinstance(model, Ensemble) and history == []
    assert [model_kind(m) for m in model.members] == kinds
    first, second = (m.head.weight for m in model.members[:2])  # type: ignore[union-attr]
    assert not torch.equal(first, second)  # different seeds, different weights


def test_an_mlp_only_ensemble_of_encoded_members_exports_as_it_scores(tmp_path: Path) -> None:
    """``ensemble_mlp_ple``: no LightGBM, every MLP piecewise-linear encoded, one ONNX graph."""
    settings = build_settings(
        {
            "model": {
                "kind": "ensemble",
                "hidden_sizes": [4],
                "ensemble_mlp_seeds": [0, 1, 2],
                "ensemble_lightgbm": False,
                "numeric_encoding": "ple",
                "encoding_bins": 4,
            },
            "train": {"epochs": 1, "class_weighting": "none"},
        }
    )
    model, _ = fit_model(settings, Dataset(*_rows(600, 1)), Dataset(*_rows(300, 2)), tmp_path)
    assert isinstance(model, Ensemble)
    assert [model_kind(m) for m in model.members] == ["mlp", "mlp", "mlp"]
    assert all(m.numeric_encoding == "ple" for m in model.members)  # type: ignore[union-attr]
    path = tmp_path / "model.onnx"
    export_onnx(model, N_FEATURES, _metadata("test-ensemble-ple"), path)
    rows = np.random.default_rng(3).normal(0, 5, size=(500, N_FEATURES)).astype(np.float32)
    np.testing.assert_allclose(
        OnnxScorer.load(path).score(rows), predict_scores(model, rows), atol=1e-5
    )
