"""The Triton model repository for the ONNX Runtime backend, checked statically."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from onnx_factory import logistic_model, make_metadata, save
from vigil.inference.errors import ModelLoadError
from vigil.providers.triton import main, write_model_repository


def test_repository_holds_the_model_and_a_batching_onnxruntime_config(tmp_path: Path) -> None:
    names = [f"f{i}" for i in range(7)]
    model = save(logistic_model([0.1] * 7, 0.0, make_metadata(names)), tmp_path / "m.onnx")
    main(
        ["repository", "--model", str(model), "--out", str(tmp_path / "repo"), "--delay-us", "250"]
    )
    folder = tmp_path / "repo" / "vigil"
    assert (folder / "1" / "model.onnx").read_bytes() == model.read_bytes()
    config = (folder / "config.pbtxt").read_text()
    assert re.search(r'^name: "vigil"$', config, re.M)
    assert re.search(r'^backend: "onnxruntime"$', config, re.M)
    assert re.search(r"^max_batch_size: 4096$", config, re.M)
    assert re.search(r'name: "features"\s+data_type: TYPE_FP32\s+dims: \[ 7 \]', config)
    assert re.search(r'name: "score"\s+data_type: TYPE_FP32\s+dims: \[ 1 \]', config)
    assert re.search(r"dynamic_batching \{\s+max_queue_delay_microseconds: 250\s+\}", config)
    assert "KIND_CPU" in config and "test-1" in config
    assert config.count("{") == config.count("}")


def test_a_file_outside_the_contract_writes_nothing(tmp_path: Path) -> None:
    bad = save(logistic_model([0.1] * 3, 0.0, None), tmp_path / "bare.onnx")  # no metadata
    with pytest.raises(ModelLoadError):
        write_model_repository(bad, tmp_path / "repo")
    assert not (tmp_path / "repo").exists()
