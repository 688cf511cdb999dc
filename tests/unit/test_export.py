"""Export contracts: ONNX parity for every kind, exact HF round trip, TorchServe handler."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vigil.config import FeaturesConfig, ModelConfig, build_settings
from vigil.data.simulate import simulate_transactions
from vigil.features.definitions import feature_names
from vigil.features.offline import compute_features_frame
from vigil.inference.errors import ModelLoadError
from vigil.inference.metadata import ModelMetadata
from vigil.inference.scorer import OnnxScorer
from vigil.models.baselines import fit_lightgbm, fit_logistic
from vigil.models.errors import ArtifactError
from vigil.models.export_hf import METADATA_FILE, load_hf, save_hf
from vigil.models.export_mar import build_mar
from vigil.models.export_onnx import export_onnx
from vigil.models.handler import VigilHandler
from vigil.models.kinds import Ensemble, FraudModel, model_kind, predict_scores
from vigil.models.mlp import FraudMLP

NAMES = feature_names(FeaturesConfig.model_validate({}))
N_FEATURES = len(NAMES)


@pytest.fixture(scope="module")
def real_rows() -> tuple[np.ndarray, np.ndarray]:
    """Feature rows and labels from a small simulated world (offline feature SQL)."""
    settings = build_settings({"data": {"n_customers": 200, "n_terminals": 400, "n_days": 40}})
    frame = compute_features_frame(settings.features, simulate_transactions(settings.data))
    return frame[NAMES].to_numpy(np.float32), frame["tx_fraud"].to_numpy(np.int8)


def _fit(kind: str, features: np.ndarray, labels: np.ndarray) -> FraudModel:
    if kind == "ensemble":  # one member of each trained kind, as the ensemble kind builds it
        members = (_fit("mlp", features, labels), _fit("lightgbm", features, labels))
        return Ensemble(members=members)
    encoding = "ple" if kind == "mlp_ple" else "none"  # the MLP with its numeric encoding
    config = ModelConfig.model_validate(
        {
            "kind": "mlp" if kind == "mlp_ple" else kind,
            "numeric_encoding": encoding,
            "hidden_sizes": [16, 8],
            "normalization": "batchnorm",
            "lightgbm": {"n_estimators": 40, "num_leaves": 15},
        }
    )
    half = len(labels) // 2
    if kind == "logistic":
        return fit_logistic(features, labels, config, balanced=True, seed=0)
    if kind == "lightgbm":
        return fit_lightgbm(
            features[:half], labels[:half], (features[half:], labels[half:]), config, True, 0
        )
    torch.manual_seed(0)
    model = FraudMLP.from_config(config, N_FEATURES)
    model.fit_scaler(features)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so the export must carry them
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-0.5, 0.5)  # type: ignore[union-attr]
                module.running_var.uniform_(0.5, 2.0)  # type: ignore[union-attr]
    return model.eval()


def _metadata(kind: str) -> ModelMetadata:
    return ModelMetadata(
        model_version=f"test-{kind}",
        model_kind=kind,
        experiment_name="test",
        git_commit="unknown",
        saved_at=datetime.now(UTC),
        feature_names=NAMES,
        feature_means=[0.0] * N_FEATURES,
        reason_baseline=[float(i) / 2 for i in range(N_FEATURES)],
        threshold=0.5,
        metrics={"average_precision": 0.5},
    )


@pytest.fixture(scope="module", params=["mlp", "mlp_ple", "logistic", "lightgbm", "ensemble"])
def exported(
    request: pytest.FixtureRequest,
    real_rows: tuple[np.ndarray, np.ndarray],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[FraudModel, Path]:
    model = _fit(request.param, *real_rows)
    path = tmp_path_factory.mktemp(request.param) / "model.onnx"
    export_onnx(model, N_FEATURES, _metadata(model_kind(model)), path)
    return model, path


def test_onnx_matches_model_on_random_and_real_rows(
    exported: tuple[FraudModel, Path], real_rows: tuple[np.ndarray, np.ndarray]
) -> None:
    model, path = exported
    scorer = OnnxScorer.load(path)  # the serving loader: checks the contract and metadata
    random_rows = np.random.default_rng(1).normal(0, 50, size=(500, N_FEATURES)).astype("f4")
    for rows in (random_rows, real_rows[0][:2000]):
        expected = predict_scores(model, rows)
        np.testing.assert_allclose(scorer.score(rows), expected, atol=1e-5, rtol=0)
    assert scorer.metadata.model_kind == model_kind(model)
    assert scorer.metadata.feature_names == NAMES
    assert scorer.metadata == _metadata(model_kind(model)).model_copy(
        update={"saved_at": scorer.metadata.saved_at}
    )  # every field, the reason baseline too, survives the ONNX metadata_props


def test_every_kind_has_the_same_signature(exported: tuple[FraudModel, Path]) -> None:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(exported[1]))
    (feature_input,), (score_output,) = session.get_inputs(), session.get_outputs()
    assert (feature_input.name, feature_input.type) == ("features", "tensor(float)")
    assert feature_input.shape[1] == N_FEATURES
    assert (score_output.name, score_output.type, len(score_output.shape)) == (
        "score",
        "tensor(float)",
        1,
    )


@pytest.mark.parametrize("kind", ["mlp", "mlp_ple"])
def test_hf_round_trip_is_exact(
    kind: str, real_rows: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    model = _fit(kind, *real_rows)
    assert isinstance(model, FraudMLP)
    metadata = _metadata("mlp")
    save_hf(model, tmp_path / "hf", metadata)
    restored = load_hf(tmp_path / "hf")
    saved = ModelMetadata.model_validate_json((tmp_path / "hf" / METADATA_FILE).read_text())
    assert saved == metadata and saved.reason_baseline is not None
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, restored.state_dict()[key]), key
    rows = real_rows[0][:1000]
    assert np.array_equal(model.predict_proba(rows), restored.predict_proba(rows))
    assert torch.equal(restored.feature_mean, model.feature_mean)  # the scaler travels
    assert restored.numeric_encoding == model.numeric_encoding
    assert set(restored.state_dict()) == set(model.state_dict())  # ple: the edges too


def test_hf_weights_that_do_not_match_the_config_are_refused(
    real_rows: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    from safetensors.torch import load_file, save_file

    model = _fit("mlp_ple", *real_rows)
    assert isinstance(model, FraudMLP)
    save_hf(model, tmp_path / "hf", _metadata("mlp"))
    weights = tmp_path / "hf" / "model.safetensors"
    tensors = load_file(weights)
    tensors["old_name_of_the_edges"] = tensors.pop("encoding_edges")  # e.g. a renamed buffer
    save_file(tensors, weights)
    with pytest.raises(ArtifactError, match="corrupted"):  # not a model with default edges
        load_hf(tmp_path / "hf")


def test_missing_or_corrupted_artifacts_give_clear_errors(
    real_rows: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    with pytest.raises(ArtifactError, match=r"has no config\.json"):
        load_hf(tmp_path / "nowhere")
    model = _fit("mlp", *real_rows)
    assert isinstance(model, FraudMLP)
    save_hf(model, tmp_path / "hf", _metadata("mlp"))
    weights = tmp_path / "hf" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:40])
    with pytest.raises(ArtifactError, match="corrupted"):
        load_hf(tmp_path / "hf")
    onnx_path = tmp_path / "model.onnx"
    export_onnx(model, N_FEATURES, _metadata("mlp"), onnx_path)
    onnx_path.write_bytes(onnx_path.read_bytes()[:100])
    with pytest.raises(ModelLoadError, match="not a loadable ONNX model"):
        OnnxScorer.load(onnx_path)


def _unpacked_handler(mar: Path, directory: Path) -> VigilHandler:
    with zipfile.ZipFile(mar) as archive:
        archive.extractall(directory)
    manifest = json.loads((directory / "MAR-INF" / "MANIFEST.json").read_text())
    context = SimpleNamespace(system_properties={"model_dir": str(directory)}, manifest=manifest)
    handler = VigilHandler()
    handler.initialize(context)
    return handler


def test_torchserve_handler_runs_from_the_unpacked_archive(
    exported: tuple[FraudModel, Path], real_rows: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    model, onnx_path = exported
    mar = build_mar(model, onnx_path, _metadata(model_kind(model)), tmp_path)
    handler = _unpacked_handler(mar, tmp_path / "unpacked")
    rows = real_rows[0][:3]
    one = {"body": json.dumps(dict(zip(NAMES, map(float, rows[0]), strict=True))).encode()}
    many = {"data": [dict(zip(NAMES, map(float, r), strict=True)) for r in rows[1:]]}
    single, batch = handler.handle([one, many], context=None)
    expected = predict_scores(model, rows)
    assert single["score"] == pytest.approx(float(expected[0]), abs=1e-5)
    assert single["label"] == int(single["score"] >= 0.5)
    assert [d["score"] for d in batch] == pytest.approx(expected[1:].tolist(), abs=1e-5)
    assert batch[0]["model_version"] == f"test-{model_kind(model)}"
    with pytest.raises(ValueError, match="missing features: tx_amount"):
        handler.handle([{"body": {n: 0.0 for n in NAMES[1:]}}], context=None)
