"""``inference.backend: triton``: the decision pipeline scores through a live Triton server.

Triton runs from the provider environment (``python -m vigil.providers.triton serve``) on the
same model file; Vigil's client (:mod:`vigil.inference.triton`) must give ONNX Runtime's
scores on 10,000 rows, serve ``/forward`` and ``/predict`` through the API, and refuse a
model that Triton does not serve or a Triton that is down.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api_support import FakeWriter, api_settings, transaction, write_model
from onnx_factory import make_metadata, mlp_model, save
from provider_support import free_port, parity_model, parity_rows, triton_server
from vigil.config import FeaturesConfig, Settings, TritonConfig
from vigil.decisions.runtime import load_models
from vigil.features import InMemoryStateStore, feature_names
from vigil.inference.errors import ModelLoadError
from vigil.inference.manager import ModelManager, scorer_loader
from vigil.inference.scorer import OnnxScorer
from vigil.inference.triton import TritonScorer
from vigil.serving import create_app

PARITY = 1e-5


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """An MLP-shaped model file and the URL of a Triton server scoring it."""
    folder = tmp_path_factory.mktemp("triton")
    model = parity_model(folder, feature_names(FeaturesConfig()))
    with triton_server(model, folder / "triton.log") as (url, _grpc):
        yield model, url


def test_scores_match_onnx_runtime_on_10000_rows(served: tuple[Path, str]) -> None:
    model, url = served
    triton = TritonScorer.load_from(model, config=TritonConfig(url=url, max_batch_rows=4096))
    x = parity_rows(10_000)
    scores = triton.score(x)  # three requests of at most 4096 rows
    assert scores.shape == (10_000,)
    assert np.abs(scores - OnnxScorer.load(model).score(x)).max() <= PARITY
    assert triton.score(x[:1]).shape == (1,)
    assert triton.model_version == "test-1"


def test_a_model_triton_does_not_serve_is_refused(served: tuple[Path, str], tmp_path: Path) -> None:
    _, url = served
    other = save(
        mlp_model(make_metadata(feature_names(FeaturesConfig())), seed=7), tmp_path / "o.onnx"
    )
    with pytest.raises(ModelLoadError, match="is not"):
        TritonScorer.load_from(other, config=TritonConfig(url=url))


def test_triton_down_is_a_load_error(served: tuple[Path, str]) -> None:
    model, _ = served
    config = TritonConfig(url=f"http://127.0.0.1:{free_port()}", timeout_seconds=1)
    with pytest.raises(ModelLoadError, match="unreachable"):
        TritonScorer.load_from(model, config=config)


def test_the_api_decides_through_triton(
    served: tuple[Path, str], small_settings: Settings, tmp_path: Path
) -> None:
    """/forward and /predict answer with Triton's scores when the backend is triton."""
    _, url = served
    model = write_model(small_settings, tmp_path / "logistic.onnx", "triton-api-1")
    inference = small_settings.inference.model_copy(
        update={"model_path": model, "backend": "triton", "triton": TritonConfig(url=url)}
    )
    settings = api_settings(small_settings.model_copy(update={"inference": inference}))
    # The logistic model is not the one Triton serves: the configured loader refuses it.
    with pytest.raises(ModelLoadError):
        load_models(settings)
    triton_model = served[0]
    names = feature_names(settings.features)
    manager = ModelManager.from_paths(
        triton_model, available_features=names, loader=scorer_loader(settings.inference)
    )
    assert isinstance(manager.snapshot().champion, TritonScorer)
    app = create_app(
        settings, model_manager=manager, state_store=InMemoryStateStore(), writer=FakeWriter()
    )  # type: ignore[arg-type]
    local = OnnxScorer.load(triton_model)
    with TestClient(app) as client:
        answer = client.post("/forward", json={"features": dict.fromkeys(names, 1.0)})
        assert answer.status_code == 200, answer.text
        expected = float(local.score(np.ones((1, len(names)), dtype=np.float32))[0])
        assert abs(answer.json()["score"] - expected) <= PARITY
        predicted = client.post("/predict", json=transaction(amount=120.0))
        assert predicted.status_code == 200, predicted.text
        assert predicted.json()["model_version"] == "test-1"
