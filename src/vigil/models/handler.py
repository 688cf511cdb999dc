"""TorchServe handler for Vigil models, packed into every ``model.mar``.

Standalone on purpose: TorchServe imports this file from the unpacked archive, where the
``vigil`` package is not installed. It reads ``vigil_model.json`` (feature names, threshold,
version) and the serialized model: TorchScript (``.pt``, the MLP) or ONNX (``.onnx``, tree
and linear baselines, run with ONNX Runtime).

Request body: one transaction's features ``{"tx_amount": 12.5, ...}`` or a list of them.
Response: ``{"score": p, "label": 0|1, "model_version": v}`` (a list for a list).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

METADATA_FILE = "vigil_model.json"


def _load_scorer(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """A function from raw features float32 [N, F] to fraud probabilities [N]."""
    if path.suffix == ".onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda batch: session.run(["score"], {"features": batch})[0]
    import torch

    module = torch.jit.load(str(path), map_location="cpu").eval()

    def score(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(batch)).numpy()

    return score


def _body(request: Any) -> Any:
    """TorchServe passes ``{"body": ...}`` or ``{"data": ...}``, as bytes, str or parsed JSON."""
    body = request.get("body", request.get("data")) if isinstance(request, dict) else request
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8")
    if isinstance(body, str):
        body = json.loads(body)
    return body


class VigilHandler:
    """Pre-processing (feature JSON -> row), scoring, post-processing (score + label)."""

    def __init__(self) -> None:
        self.initialized = False
        self.feature_names: list[str] = []
        self.threshold = 0.5
        self.model_version = ""
        self._score: Callable[[np.ndarray], np.ndarray] | None = None

    def initialize(self, context: Any) -> None:
        """Load metadata and model from the unpacked archive directory."""
        model_dir = Path(context.system_properties["model_dir"])
        metadata = json.loads((model_dir / METADATA_FILE).read_text())
        self.feature_names = list(metadata["feature_names"])
        self.threshold = float(metadata["threshold"])
        self.model_version = str(metadata["model_version"])
        self._score = _load_scorer(model_dir / context.manifest["model"]["serializedFile"])
        self.initialized = True

    def _row(self, transaction: Any) -> list[float]:
        if not isinstance(transaction, dict):
            raise ValueError("each transaction must be a JSON object of feature values")
        missing = [name for name in self.feature_names if name not in transaction]
        if missing:
            raise ValueError(f"missing features: {', '.join(missing)}")
        return [float(transaction[name]) for name in self.feature_names]

    def preprocess(self, requests: list[Any]) -> tuple[np.ndarray, list[int | None]]:
        """All requests' transactions as one float32 batch, plus each request's row count.

        A request holding one object has count ``None`` (answered with one object).
        """
        rows: list[list[float]] = []
        counts: list[int | None] = []
        for request in requests:
            body = _body(request)
            transactions = body if isinstance(body, list) else [body]
            rows.extend(self._row(t) for t in transactions)
            counts.append(len(transactions) if isinstance(body, list) else None)
        batch = np.asarray(rows, dtype=np.float32).reshape(len(rows), len(self.feature_names))
        if not np.isfinite(batch).all():
            raise ValueError("feature values must be finite numbers")
        return batch, counts

    def inference(self, batch: np.ndarray) -> np.ndarray:
        """Fraud probabilities for a raw feature batch."""
        if self._score is None:
            raise RuntimeError("handler used before initialize()")
        return self._score(batch) if len(batch) else np.zeros(0, dtype=np.float32)

    def postprocess(self, scores: np.ndarray, counts: list[int | None]) -> list[Any]:
        """One response per request: a decision, or a list of decisions."""
        decisions = [
            {
                "score": float(score),
                "label": int(score >= self.threshold),
                "model_version": self.model_version,
            }
            for score in scores
        ]
        responses: list[Any] = []
        position = 0
        for count in counts:
            size = 1 if count is None else count
            chunk = decisions[position : position + size]
            responses.append(chunk[0] if count is None else chunk)
            position += size
        return responses

    def handle(self, data: list[Any], context: Any) -> list[Any]:
        """TorchServe's entry point: a batch of requests in, one response per request out."""
        if not self.initialized:
            self.initialize(context)
        batch, counts = self.preprocess(data)
        return self.postprocess(self.inference(batch), counts)
