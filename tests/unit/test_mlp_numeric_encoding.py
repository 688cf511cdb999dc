"""The MLP's piecewise-linear encoding (``model.numeric_encoding: ple``): its edges fitted on
training rows, the code continuous and monotone, carried by every export, served torch-free."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from onnx_factory import make_metadata
from vigil.config import ModelConfig, TrainConfig
from vigil.models.export_hf import load_hf, save_hf
from vigil.models.export_onnx import export_onnx
from vigil.models.mlp import FraudMLP, quantile_edges
from vigil.training.trainer import Dataset, train_mlp

N = 5
NAMES = [f"f{i}" for i in range(N)]
BINS = 4
PLE = ModelConfig.model_validate(
    {"hidden_sizes": [8], "numeric_encoding": "ple", "encoding_bins": BINS}
)


def _rows(n: int = 2000, seed: int = 0, shift: float = 0.0) -> np.ndarray:
    """Normal, heavy-tailed (amount-like), binary, mostly-zero count and constant columns."""
    rng = np.random.default_rng(seed)
    rows = np.empty((n, N), dtype=np.float32)
    rows[:, 0] = rng.normal(shift, 1, n)
    rows[:, 1] = np.exp(rng.normal(3 + shift, 1.5, n))
    rows[:, 2] = rng.random(n) < 0.3
    rows[:, 3] = np.where(rng.random(n) < 0.8, 0, rng.geometric(0.3, n))
    rows[:, 4] = 7.0
    return rows


def _fitted(seed: int = 0) -> FraudMLP:
    torch.manual_seed(seed)
    model = FraudMLP.from_config(PLE, N).eval()
    model.fit_scaler(_rows())
    return model


def test_edges_are_quantiles_of_the_scaled_training_rows() -> None:
    rows = _rows()
    model = _fitted()
    scaled = (rows - model.feature_mean.numpy()) / model.feature_scale.numpy()
    edges = model.encoding_edges.numpy()
    np.testing.assert_allclose(
        edges[0], np.quantile(scaled[:, 0], np.linspace(0, 1, BINS + 1)), rtol=1e-5, atol=1e-6
    )
    # The binary column has two distinct quantiles: one bin, then width-0 padding.
    low, high = np.unique(scaled[:, 2])
    np.testing.assert_allclose(edges[2], [low, high, high, high, high], rtol=1e-6)
    assert np.all(np.diff(edges, axis=1) >= 0)
    assert np.all(edges[4] == edges[4, 0])  # constant column: every bin of width 0


def test_quantile_edges_drop_repeats_and_pad_at_the_end() -> None:
    column = np.array([[0.0], [0.0], [0.0], [0.0], [1.0], [5.0]])
    edges = quantile_edges(column, 4)
    assert edges.shape == (1, 5)
    assert edges[0, 0] == 0.0 and edges[0, -1] == 5.0
    assert len(np.unique(edges)) == len(np.unique(np.quantile(column, np.linspace(0, 1, 5))))
    assert np.all(np.diff(edges[0]) >= 0)


def test_encoding_is_the_piecewise_linear_code_of_the_paper() -> None:
    model = FraudMLP(1, [2], numeric_encoding="ple", encoding_bins=3)
    model.set_edges(np.array([[0.0, 1.0, 3.0, 7.0]]))
    x = torch.tensor([[-1.0], [0.5], [1.0], [2.0], [5.0], [11.0]])
    expected = torch.tensor(
        [
            [-1.0, 0.0, 0.0],  # below the first edge: the first bin extends down
            [0.5, 0.0, 0.0],
            [1.0, 0.0, 0.0],
            [1.0, 0.5, 0.0],
            [1.0, 1.0, 0.5],
            [1.0, 1.0, 2.0],  # above the last edge: the last bin extends up
        ]
    )
    torch.testing.assert_close(model.encode(x), expected)


def test_encoding_is_continuous_and_monotone_in_each_input() -> None:
    model = _fitted()
    grid = torch.linspace(-30, 60, 20_001)  # far beyond the training range on both sides
    for column in range(N):
        x = torch.zeros(len(grid), N)
        x[:, column] = grid
        code = model.encode(x).view(len(grid), N, BINS)[:, column]
        torch.testing.assert_close(code, model.bins(x)[:, column])
        steps = code.diff(dim=0)
        assert bool((steps >= -1e-6).all()), column  # monotone non-decreasing
        widths = model.encoding_edges[column].diff()
        active = widths > 0
        if active.any():  # Lipschitz: no step larger than grid step / narrowest bin
            bound = float(grid[1] - grid[0]) / float(widths[active].min()) + 1e-4
            assert float(steps.abs().max()) <= bound, column
        else:
            assert bool((code == 0).all())  # a constant input carries nothing
        assert bool((code[:, ~active] == 0).all())


def test_training_fits_the_edges_on_training_rows_only() -> None:
    train, valid = _rows(1500, seed=1), _rows(500, seed=2, shift=3.0)
    labels = (train[:, 0] + train[:, 2] > 0.8).astype(np.int8)
    valid_labels = (valid[:, 0] + valid[:, 2] > 3.8).astype(np.int8)
    config = TrainConfig.model_validate({"epochs": 1, "batch_size": 256, "seed": 0})
    model, _ = train_mlp(Dataset(train, labels), Dataset(valid, valid_labels), PLE, config)
    scaled = (train - model.feature_mean.numpy()) / model.feature_scale.numpy()
    np.testing.assert_allclose(
        model.encoding_edges.numpy(), quantile_edges(scaled, BINS), rtol=1e-5
    )
    both = np.concatenate([train, valid])
    with_validation = (both - model.feature_mean.numpy()) / model.feature_scale.numpy()
    assert not np.allclose(model.encoding_edges.numpy(), quantile_edges(with_validation, BINS))
    assert model.body[0].in_features == N * BINS


def test_none_leaves_the_model_as_it_was() -> None:
    torch.manual_seed(0)
    plain = FraudMLP.from_config(ModelConfig.model_validate({"hidden_sizes": [8]}), N)
    assert "encoding_edges" not in plain.state_dict()
    assert plain.body[0].in_features == N
    with pytest.raises(ValueError, match="numeric_encoding"):
        plain.set_edges(np.zeros((N, BINS + 1)))
    with pytest.raises(ValueError, match="unknown numeric_encoding"):
        FraudMLP(N, [8], numeric_encoding="periodic")
    with pytest.raises(ValueError, match="non-decreasing"):
        _fitted().set_edges(np.tile([0.0, 2.0, 1.0, 3.0, 4.0], (N, 1)))


def _extreme_rows() -> np.ndarray:
    rng = np.random.default_rng(3)
    rows = _rows(500, seed=4)
    rows[:100] *= rng.normal(0, 50, size=(100, N)).astype(np.float32)  # outside every bin
    return rows


def test_onnx_torchscript_and_hf_exports_carry_the_encoding(tmp_path: Path) -> None:
    from vigil.inference.scorer import OnnxScorer

    model = _fitted()
    rows = np.concatenate([_rows(500, seed=5), _extreme_rows()])
    expected = model.predict_proba(rows)
    unfitted = FraudMLP.from_config(PLE, N).eval()
    unfitted.load_state_dict(
        {k: v for k, v in model.state_dict().items() if k != "encoding_edges"}, strict=False
    )
    assert not np.allclose(unfitted.predict_proba(rows), expected, atol=1e-3)  # edges matter
    path = tmp_path / "model.onnx"
    export_onnx(model, N, make_metadata(NAMES, model_kind="mlp"), path)
    np.testing.assert_allclose(OnnxScorer.load(path).score(rows), expected, atol=1e-5, rtol=0)
    traced = torch.jit.trace(model, torch.zeros(2, N))
    with torch.no_grad():
        scripted = torch.sigmoid(traced(torch.from_numpy(rows))).numpy()
    np.testing.assert_allclose(scripted, expected, atol=1e-6, rtol=0)
    save_hf(model, tmp_path / "hf", make_metadata(NAMES, model_kind="mlp"))
    loaded = load_hf(tmp_path / "hf")
    assert (loaded.numeric_encoding, loaded.encoding_bins) == ("ple", BINS)
    assert torch.equal(loaded.encoding_edges, model.encoding_edges)
    np.testing.assert_array_equal(loaded.predict_proba(rows), expected)


def test_the_encoded_onnx_model_scores_with_torch_unimportable(tmp_path: Path) -> None:
    model = _fitted()
    rows = _extreme_rows()
    path = tmp_path / "model.onnx"
    export_onnx(model, N, make_metadata(NAMES, model_kind="mlp"), path)
    np.save(tmp_path / "rows.npy", rows)
    code = f"""
import sys
sys.modules["torch"] = None  # any import of torch now raises ImportError
import numpy as np
from vigil.inference.scorer import OnnxScorer
import vigil.serving
print(",".join(repr(float(s)) for s in OnnxScorer.load({str(path)!r}).score(
    np.load({str(tmp_path / "rows.npy")!r}))))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    served = np.array([float(s) for s in result.stdout.strip().split(",")])
    np.testing.assert_allclose(served, model.predict_proba(rows), atol=1e-5, rtol=0)
