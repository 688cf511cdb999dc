"""OnnxScorer: scores match the hand-computed model, and every broken file fails clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from onnx_factory import fixed_batch_model, logistic_model, make_metadata, save
from vigil.inference.errors import InvalidFeaturesError, ModelLoadError, ModelScoringError
from vigil.inference.scorer import OnnxScorer

NAMES = ["tx_amount", "tx_during_night", "terminal_id_risk_7day_window"]
WEIGHTS = [0.02, 1.5, 4.0]
BIAS = -3.0


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    return save(logistic_model(WEIGHTS, BIAS, make_metadata(NAMES)), tmp_path / "model.onnx")


def test_scores_match_numpy_sigmoid(model_path: Path) -> None:
    scorer = OnnxScorer.load(model_path)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(257, 3)) * [50.0, 1.0, 0.5]
    scores = scorer.score(features)  # float64 in: converted
    expected = _sigmoid(features.astype(np.float32) @ np.float32(WEIGHTS) + BIAS)
    assert scores.dtype == np.float32
    assert scores.shape == (257,)
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    assert scorer.score(features[5:6])[0] == pytest.approx(expected[5], abs=1e-6)


def test_exposes_metadata_and_feature_order(model_path: Path) -> None:
    scorer = OnnxScorer.load(model_path)
    assert scorer.metadata == make_metadata(NAMES)
    assert scorer.feature_names == tuple(NAMES)
    assert scorer.model_version == "test-1"


@pytest.mark.parametrize(
    ("features", "message"),
    [
        (np.zeros((2, 4), dtype=np.float32), r"shape \[N, 3\].*got \[2, 4\]"),
        (np.zeros(3, dtype=np.float32), r"got \[3\]"),
        (np.array([["a", "b", "c"]]), "numeric"),
    ],
)
def test_rejects_bad_feature_arrays(model_path: Path, features: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidFeaturesError, match=message):
        OnnxScorer.load(model_path).score(features)


def test_nan_output_is_a_scoring_error(model_path: Path) -> None:
    scorer = OnnxScorer.load(model_path)
    with pytest.raises(ModelScoringError, match="non-finite"):
        scorer.score(np.array([[1.0, np.nan, 0.0]]))


def test_runtime_failure_is_a_scoring_error(tmp_path: Path) -> None:
    path = save(fixed_batch_model(make_metadata(NAMES), batch=2), tmp_path / "fixed.onnx")
    scorer = OnnxScorer.load(path)
    assert scorer.score(np.zeros((2, 3))).shape == (2,)
    with pytest.raises(ModelScoringError, match="test-1 failed"):
        scorer.score(np.zeros((3, 3)))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        OnnxScorer.load(tmp_path / "nope.onnx")


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "random.onnx"
    path.write_bytes(np.random.default_rng(1).bytes(2048))
    with pytest.raises(ModelLoadError, match="not a loadable ONNX model"):
        OnnxScorer.load(path)


def test_truncated_file(model_path: Path) -> None:
    model_path.write_bytes(model_path.read_bytes()[:60])
    with pytest.raises(ModelLoadError, match="not a loadable ONNX model"):
        OnnxScorer.load(model_path)


def test_model_without_metadata(tmp_path: Path) -> None:
    path = save(logistic_model(WEIGHTS, BIAS, metadata=None), tmp_path / "bare.onnx")
    with pytest.raises(ModelLoadError, match="no metadata_props"):
        OnnxScorer.load(path)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("feature_names", "not json", "malformed metadata"),
        ("threshold", "1.5", "(?s)malformed metadata.*threshold"),
        ("feature_means", "[0.0]", "1 feature_means for 3 feature_names"),
    ],
)
def test_malformed_metadata(model_path: Path, key: str, value: str, message: str) -> None:
    model = onnx.load(str(model_path))
    props = {p.key: p.value for p in model.metadata_props}
    props[key] = value
    onnx.helper.set_model_props(model, props)
    onnx.save_model(model, str(model_path))
    with pytest.raises(ModelLoadError, match=message):
        OnnxScorer.load(model_path)


@pytest.mark.parametrize(
    "model",
    [
        logistic_model(WEIGHTS, BIAS, make_metadata(NAMES), input_name="input"),
        logistic_model(WEIGHTS, BIAS, make_metadata(NAMES), output_shape=("batch", 1)),
        logistic_model([*WEIGHTS, 1.0], BIAS, make_metadata(NAMES)),
    ],
    ids=["input-name", "output-rank", "feature-count"],
)
def test_wrong_signature(tmp_path: Path, model: onnx.ModelProto) -> None:
    path = save(model, tmp_path / "wrong.onnx")
    with pytest.raises(ModelLoadError, match="does not meet the model contract"):
        OnnxScorer.load(path)
