"""The MLP's log1p of heavy-tailed counts: which inputs, inside the model, carried by exports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from onnx_factory import make_metadata
from vigil.config import FeaturesConfig, ModelConfig, TrainConfig
from vigil.features.definitions import (
    feature_names,
    log_scaled_feature_indices,
    log_scaled_feature_names,
    stream_feature_names,
    verdict_feature_names,
)
from vigil.inference.scorer import OnnxScorer
from vigil.models.export_hf import load_hf, save_hf
from vigil.models.export_onnx import export_onnx
from vigil.models.mlp import FraudMLP
from vigil.training.trainer import Dataset, train_mlp

VERDICTS = FeaturesConfig.model_validate({"verdicts": True})
NAMES = feature_names(VERDICTS)
LOGGED = log_scaled_feature_indices(VERDICTS)


def _rows(n: int = 400, seed: int = 0) -> np.ndarray:
    """Stream features around 0 (negative ones too), verdict counts with a long tail."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(0, 3, size=(n, len(NAMES))).astype(np.float32)
    counts = rng.geometric(0.3, size=(n, len(LOGGED))) - 1
    counts[: n // 20] *= 12  # a few marked terminals gather many frauds
    rows[:, LOGGED] = counts
    return rows


def test_the_log_scaled_inputs_are_the_verdict_counts_only() -> None:
    w = VERDICTS.verdict_window_days
    assert log_scaled_feature_names(VERDICTS) == [
        f"terminal_id_verdict_nb_reviewed_{w}day_window",
        f"terminal_id_verdict_nb_fraud_{w}day_window",
        f"terminal_id_verdict_nb_compromised_{w}day_window",
        f"customer_id_verdict_nb_reviewed_{w}day_window",
        f"customer_id_verdict_nb_fraud_{w}day_window",
    ]
    assert set(log_scaled_feature_names(VERDICTS)) < set(verdict_feature_names(VERDICTS))
    assert [NAMES[i] for i in LOGGED] == log_scaled_feature_names(VERDICTS)
    assert min(LOGGED) >= len(stream_feature_names(VERDICTS))  # the 24 stay raw


def test_with_verdicts_off_nothing_is_log_scaled() -> None:
    plain = FeaturesConfig.model_validate({})
    assert log_scaled_feature_names(plain) == []
    assert log_scaled_feature_indices(plain) == []


def test_forward_takes_log1p_of_the_listed_inputs_before_the_scaler() -> None:
    rows = _rows()
    model = FraudMLP(len(NAMES), [8], log_features=LOGGED).eval()
    model.fit_scaler(rows)
    logged = rows.astype(np.float64)
    logged[:, LOGGED] = np.log1p(logged[:, LOGGED])
    np.testing.assert_allclose(model.feature_mean.numpy(), logged.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(model.feature_scale.numpy(), logged.std(axis=0), rtol=1e-4)
    with torch.no_grad():
        scaled = (torch.from_numpy(logged.astype(np.float32)) - model.feature_mean) / (
            model.feature_scale
        )
        expected = model.head(model.body(scaled)).squeeze(-1)
        got = model(torch.from_numpy(rows))
    torch.testing.assert_close(got, expected)


def test_without_log_features_the_model_is_unchanged() -> None:
    rows = _rows()
    torch.manual_seed(0)
    plain = FraudMLP(len(NAMES), [8]).eval()
    torch.manual_seed(0)
    empty = FraudMLP(len(NAMES), [8], log_features=[]).eval()
    plain.fit_scaler(rows)
    empty.fit_scaler(rows)
    np.testing.assert_array_equal(plain.feature_mean.numpy(), rows.mean(axis=0))
    with torch.no_grad():
        assert torch.equal(plain(torch.from_numpy(rows)), empty(torch.from_numpy(rows)))
    assert set(plain.state_dict()) == set(empty.state_dict())  # no new saved tensor


def test_log_features_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="log_features"):
        FraudMLP(4, [2], log_features=[4])


def test_onnx_and_hf_exports_carry_the_log_scaling(tmp_path: Path) -> None:
    rows = _rows()
    torch.manual_seed(0)
    model = FraudMLP(len(NAMES), [8], log_features=LOGGED).eval()
    model.fit_scaler(rows)
    expected = model.predict_proba(rows)
    raw = FraudMLP(len(NAMES), [8]).eval()
    raw.load_state_dict(model.state_dict())
    assert not np.allclose(raw.predict_proba(rows), expected, atol=1e-3)  # the transform matters
    path = tmp_path / "model.onnx"
    export_onnx(model, len(NAMES), make_metadata(NAMES, model_kind="mlp"), path)
    np.testing.assert_allclose(OnnxScorer.load(path).score(rows), expected, atol=1e-5, rtol=0)
    save_hf(model, tmp_path / "hf", make_metadata(NAMES, model_kind="mlp"))
    loaded = load_hf(tmp_path / "hf")
    assert loaded.log_features == LOGGED
    np.testing.assert_array_equal(loaded.predict_proba(rows), expected)


def test_training_fits_the_scaler_on_log_scaled_counts() -> None:
    rows, valid = _rows(600, seed=1), _rows(200, seed=2)
    labels = (rows[:, LOGGED[2]] > 0).astype(np.int8)
    valid_labels = (valid[:, LOGGED[2]] > 0).astype(np.int8)
    config = TrainConfig.model_validate({"epochs": 1, "batch_size": 128, "seed": 0})
    model, _ = train_mlp(
        Dataset(rows, labels),
        Dataset(valid, valid_labels),
        ModelConfig.model_validate({"hidden_sizes": [4]}),
        config,
        log_features=LOGGED,
    )
    assert model.log_features == LOGGED
    np.testing.assert_allclose(
        model.feature_mean.numpy()[LOGGED], np.log1p(rows[:, LOGGED]).mean(axis=0), rtol=1e-5
    )
