"""Scoring through a Triton Inference Server instead of in-process ONNX Runtime.

:class:`TritonScorer` is an :class:`~vigil.inference.scorer.OnnxScorer` whose ``score`` goes
to Triton (``inference.backend: triton``). The local model file still gives the contract and
the metadata (feature names, threshold, version) every decision names; Triton must serve the
same file, which the warm-up of every load checks (the training means must score alike to
``PARITY`` on both sides), so a Triton serving another model refuses the load or the swap.

The request is the KServe v2 protocol over HTTP/1.1 with Triton's binary tensor extension:
a JSON header followed by the raw float32 rows, the score comes back as raw float32 (no JSON
numbers either way). It uses the standard library's ``http.client`` on one kept-alive
connection per scorer, which costs less per call than a general-purpose HTTP client.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from pathlib import Path

import numpy as np

from vigil.config import TritonConfig
from vigil.inference.errors import ModelLoadError, ModelScoringError
from vigil.inference.metadata import INPUT_NAME, OUTPUT_NAME
from vigil.inference.scorer import OnnxScorer, as_batch, checked_scores

HEADER_LENGTH = "Inference-Header-Content-Length"
PARITY = 1e-5  # max |score difference| between Triton and the local file on the warm-up row


class TritonClient:
    """One kept-alive HTTP connection to a Triton server's ``/v2/models/<name>/infer``."""

    def __init__(self, config: TritonConfig) -> None:
        url = urllib.parse.urlsplit(config.url)
        if url.scheme != "http" or not url.hostname:
            raise ModelLoadError(f"inference.triton.url must be http://host:port, got {url!r}")
        self._host, self._port = url.hostname, url.port or 80
        self._timeout = config.timeout_seconds
        self.max_batch_rows = config.max_batch_rows
        self.model_name = config.model_name
        self._path = f"{url.path.rstrip('/')}/v2/models/{config.model_name}/infer"
        self._connection: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()  # one request at a time on the one connection

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Scores [N] (float32) for the rows ``batch`` [N, F]; raises ``ModelScoringError``."""
        header = json.dumps(
            {
                "inputs": [
                    {
                        "name": INPUT_NAME,
                        "shape": list(batch.shape),
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": batch.nbytes},
                    }
                ],
                "outputs": [{"name": OUTPUT_NAME, "parameters": {"binary_data": True}}],
            },
            separators=(",", ":"),
        ).encode()
        headers = {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(header))}
        with self._lock:
            status, json_length, body = self._post(header + batch.tobytes(), headers)
        if status != 200:
            raise ModelScoringError(
                f"Triton model {self.model_name!r} answered {status}: {body[:300]!r}"
            )
        return self._scores(body, json_length, batch.shape[0])

    def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, int | None, bytes]:
        """POST once, reconnecting once when the kept-alive connection was closed meanwhile."""
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._timeout
                )
            try:
                self._connection.request("POST", self._path, body, headers)
                response = self._connection.getresponse()
                length = response.getheader(HEADER_LENGTH)
                return response.status, int(length) if length else None, response.read()
            except (OSError, http.client.HTTPException) as error:
                self.close()
                if attempt == 2:
                    raise ModelScoringError(
                        f"Triton at {self._host}:{self._port} is unreachable: {error}"
                    ) from error
        raise AssertionError("unreachable")

    def _scores(self, body: bytes, json_length: int | None, rows: int) -> np.ndarray:
        """The ``score`` output, binary or JSON, as float32 [N]."""
        try:
            meta = json.loads(body[:json_length] if json_length else body)
            (output,) = (o for o in meta["outputs"] if o["name"] == OUTPUT_NAME)
            if json_length is not None and "binary_data_size" in output.get("parameters", {}):
                raw = body[json_length : json_length + output["parameters"]["binary_data_size"]]
                scores = np.frombuffer(raw, dtype=np.float32)
            else:
                scores = np.asarray(output["data"], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as error:
            raise ModelScoringError(f"Triton answered an unreadable body: {error}") from error
        return scores.reshape(rows) if scores.size == rows else scores

    def close(self) -> None:
        """Drop the connection (the next call opens a new one)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class TritonScorer(OnnxScorer):
    """The local model file's contract, scored by the Triton server of ``config``."""

    _client: TritonClient

    @classmethod
    def load_from(cls, path: Path, threads: int = 1, *, config: TritonConfig) -> TritonScorer:
        """Read and check ``path`` here; prove Triton serves the same model (its means row)."""
        local = OnnxScorer.load(path, threads)
        scorer = cls(local._session, local.metadata, local.path)
        scorer._client = TritonClient(config)
        means = np.asarray([local.metadata.feature_means], dtype=np.float32)
        try:
            remote = scorer.score(means)
        except ModelScoringError as error:
            raise ModelLoadError(f"Triton cannot score model {path}: {error}") from error
        difference = float(np.abs(remote - local.score(means)).max())
        if difference > PARITY:
            raise ModelLoadError(
                f"Triton's model {config.model_name!r} is not {path} "
                f"(scores differ by {difference:.2e} on the training means)"
            )
        return scorer

    def score(self, features: np.ndarray) -> np.ndarray:
        """Fraud probabilities, float32 [N], computed by Triton."""
        batch = as_batch(features, self.feature_names)
        step = self._client.max_batch_rows
        parts = [self._client.infer(batch[i : i + step]) for i in range(0, len(batch), step)]
        scores = parts[0] if len(parts) == 1 else np.concatenate(parts or [np.empty(0, np.float32)])
        return checked_scores(scores, batch.shape[0], self.model_version)
