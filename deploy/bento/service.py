"""BentoML service scoring Vigil's exported ONNX model, with BentoML's adaptive batching.

``POST /score`` takes ``{"features": [[...], ...]}`` (rows of raw feature values in the
model's feature order) and answers the fraud probabilities, one per row. Concurrent requests
are merged by BentoML's adaptive batcher into one model run. The model file comes from
``VIGIL_INFERENCE__MODEL_PATH`` (Vigil's own setting name; default
``models/current/model.onnx``) and is scored by Vigil's ``OnnxScorer``, which checks the
model contract at load, exactly as ``vigil serve`` does.

    bentoml serve service:VigilScorer --port 3000      # from deploy/bento
    make bento                                          # bentoml build (Dockerfile included)
"""

from __future__ import annotations

import os
from pathlib import Path

import bentoml
import numpy as np
from bentoml.exceptions import InvalidArgument

from vigil.inference.errors import InvalidFeaturesError
from vigil.inference.scorer import OnnxScorer

MODEL_ENV = "VIGIL_INFERENCE__MODEL_PATH"


@bentoml.service(workers=1, traffic={"timeout": 10}, resources={"cpu": "1"})
class VigilScorer:
    """One ONNX Runtime session (one intra-op thread, as in ``vigil serve``) per worker."""

    def __init__(self) -> None:
        self.scorer = OnnxScorer.load(Path(os.environ.get(MODEL_ENV, "models/current/model.onnx")))

    @bentoml.api(batchable=True, max_batch_size=4096, max_latency_ms=20)
    def score(self, features: np.ndarray) -> np.ndarray:
        """Fraud probabilities [N] for raw feature rows [N, F] (float32 in the model's order).

        Rows of the wrong width are a 400. BentoML validates before batching only what the
        signature declares, so a malformed request merged into a batch fails that batch.
        """
        try:
            return self.scorer.score(features)
        except InvalidFeaturesError as error:
            raise InvalidArgument(str(error)) from None

    @bentoml.api(route="/metadata")
    def metadata(self) -> dict[str, object]:
        """The model's version, feature names (the row order) and decision threshold."""
        meta = self.scorer.metadata
        return {
            "model_version": meta.model_version,
            "feature_names": meta.feature_names,
            "threshold": meta.threshold,
        }
