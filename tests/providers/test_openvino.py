"""OpenVINO Runtime scores the exported model like ONNX Runtime (within 1e-5), int8 close to it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import require_package
from provider_support import parity_model, parity_rows
from vigil.inference.errors import InvalidFeaturesError, ModelLoadError
from vigil.inference.scorer import OnnxScorer

PARITY = 1e-5


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_package("openvino")
    return parity_model(tmp_path_factory.mktemp("ov"))


def test_ir_matches_onnx_runtime_on_10000_rows_single_and_batch(
    onnx_model: Path, tmp_path: Path
) -> None:
    from vigil.providers.openvino import OpenVinoScorer, export_ir

    xml = export_ir(onnx_model, tmp_path / "ir")
    assert xml.exists() and xml.with_suffix(".bin").exists()
    reference, scorer = OnnxScorer.load(onnx_model), OpenVinoScorer.from_files(onnx_model, xml)
    x = parity_rows(10_000)
    expected = reference.score(x)
    assert np.abs(scorer.score(x) - expected).max() <= PARITY
    single = np.concatenate([scorer.score(x[i : i + 1]) for i in range(200)])
    assert np.abs(single - expected[:200]).max() <= PARITY
    assert scorer.model_version == reference.model_version
    assert scorer.feature_names == tuple(f"f{i}" for i in range(24))


def test_int8_is_close_and_keeps_the_contract(onnx_model: Path, tmp_path: Path) -> None:
    from vigil.providers.openvino import OpenVinoScorer, quantize_int8

    xml = quantize_int8(onnx_model, parity_rows(1000, seed=1), tmp_path / "int8")
    int8 = OpenVinoScorer.from_files(onnx_model, xml)
    x = parity_rows(2000, seed=2)
    scores = int8.score(x)
    assert scores.shape == (2000,) and scores.dtype == np.float32
    assert np.abs(scores - OnnxScorer.load(onnx_model).score(x)).max() < 0.05
    assert "FakeQuantize" in xml.read_text() or "i8" in xml.read_text()


def test_bad_input_and_bad_files_are_clear_errors(onnx_model: Path, tmp_path: Path) -> None:
    from vigil.providers.openvino import OpenVinoScorer

    scorer = OpenVinoScorer.from_files(onnx_model)  # compiled straight from the ONNX file
    with pytest.raises(InvalidFeaturesError):
        scorer.score(np.zeros((3, 5), dtype=np.float32))
    broken = tmp_path / "model.xml"
    broken.write_text("<net>")
    with pytest.raises(ModelLoadError):
        OpenVinoScorer.from_files(onnx_model, broken)
