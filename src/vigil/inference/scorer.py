"""ONNX Runtime scorer: loads a model file under the contract and turns features into scores."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from vigil.inference.errors import InvalidFeaturesError, ModelLoadError, ModelScoringError
from vigil.inference.metadata import INPUT_NAME, OUTPUT_NAME, ModelMetadata

logger = logging.getLogger(__name__)

_FLOAT_TENSOR = "tensor(float)"


def _session_options(intra_op_num_threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_num_threads
    # One request is one small graph run: parallelism across operators only costs wake-ups.
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def _open_session(path: Path, intra_op_num_threads: int) -> ort.InferenceSession:
    try:
        found = path.is_file()
    except OSError as error:  # e.g. a name longer than the file system allows
        raise ModelLoadError(f"model file path is not usable: {error.strerror}") from None
    if not found:
        raise ModelLoadError(f"model file {path} does not exist")
    try:
        return ort.InferenceSession(
            str(path),
            sess_options=_session_options(intra_op_num_threads),
            providers=["CPUExecutionProvider"],
        )
    except Exception as error:  # ONNX Runtime's errors share no base class but Exception
        raise ModelLoadError(
            f"model file {path} is not a loadable ONNX model (corrupted or truncated?): {error}"
        ) from error


def _read_metadata(path: Path, session: ort.InferenceSession) -> ModelMetadata:
    props = dict(session.get_modelmeta().custom_metadata_map)
    if not props:
        raise ModelLoadError(f"model file {path} carries no metadata_props (ModelMetadata)")
    try:
        metadata = ModelMetadata.from_props(props)
    except ValueError as error:  # pydantic's ValidationError and JSONDecodeError both are
        raise ModelLoadError(f"model file {path} has malformed metadata: {error}") from error
    if len(metadata.feature_means) != len(metadata.feature_names):
        raise ModelLoadError(
            f"model file {path} has malformed metadata: {len(metadata.feature_means)} "
            f"feature_means for {len(metadata.feature_names)} feature_names"
        )
    baseline = metadata.reason_baseline
    if baseline is not None and len(baseline) != len(metadata.feature_names):
        raise ModelLoadError(
            f"model file {path} has malformed metadata: {len(baseline)} "
            f"reason_baseline values for {len(metadata.feature_names)} feature_names"
        )
    return metadata


def _check_signature(path: Path, session: ort.InferenceSession, n_features: int) -> None:
    """The contract: input ``features`` float32 [batch, F], output ``score`` float32 [batch]."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    expected = (
        f"expected one input {INPUT_NAME!r} float32 [batch, {n_features}] "
        f"and one output {OUTPUT_NAME!r} float32 [batch]"
    )

    def describe(args: Sequence[Any]) -> str:
        return ", ".join(f"{a.name!r} {a.type} {a.shape}" for a in args)

    found = f"found inputs ({describe(inputs)}), outputs ({describe(outputs)})"
    problem = f"model file {path} does not meet the model contract: {expected}; {found}"
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelLoadError(problem)
    (feature_arg,), (score_arg,) = inputs, outputs
    feature_dim = feature_arg.shape[-1] if len(feature_arg.shape) == 2 else None
    if (
        feature_arg.name != INPUT_NAME
        or feature_arg.type != _FLOAT_TENSOR
        or len(feature_arg.shape) != 2
        or (isinstance(feature_dim, int) and feature_dim != n_features)
        or score_arg.name != OUTPUT_NAME
        or score_arg.type != _FLOAT_TENSOR
        or len(score_arg.shape) != 1
    ):
        raise ModelLoadError(problem)


class OnnxScorer:
    """One loaded model: its metadata and a fast ``score`` over raw feature rows."""

    def __init__(self, session: ort.InferenceSession, metadata: ModelMetadata, path: Path) -> None:
        self._session = session
        self.metadata = metadata
        self.path = path
        self.feature_names: tuple[str, ...] = tuple(metadata.feature_names)
        self.n_features = len(self.feature_names)
        self._output_names = [OUTPUT_NAME]

    @classmethod
    def load(cls, path: Path, intra_op_num_threads: int = 1) -> OnnxScorer:
        """Load and check a model file; raises ``ModelLoadError`` with the reason."""
        path = Path(path)
        session = _open_session(path, intra_op_num_threads)
        metadata = _read_metadata(path, session)
        _check_signature(path, session, len(metadata.feature_names))
        logger.info(
            "loaded model %s (%s, %d features) from %s",
            metadata.model_version,
            metadata.model_kind,
            len(metadata.feature_names),
            path,
        )
        return cls(session, metadata, path)

    @property
    def model_version(self) -> str:
        """The loaded model's version string."""
        return self.metadata.model_version

    def score(self, features: np.ndarray) -> np.ndarray:
        """Fraud probabilities, float32 [N], for raw features [N, F] (converted to float32)."""
        batch = as_batch(features, self.feature_names)
        try:
            (scores,) = self._session.run(self._output_names, {INPUT_NAME: batch})
        except Exception as error:  # ONNX Runtime's errors share no base class but Exception
            raise ModelScoringError(f"model {self.model_version} failed: {error}") from error
        return checked_scores(scores, batch.shape[0], self.model_version)


def as_batch(features: np.ndarray, feature_names: Sequence[str]) -> np.ndarray:
    """Check shape and dtype; convert to C-contiguous float32 only when needed."""
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[1] != len(feature_names):
        raise InvalidFeaturesError(
            f"expected features of shape [N, {len(feature_names)}] "
            f"({', '.join(feature_names)}), got {list(features.shape)}"
        )
    if features.dtype == np.float32 and features.flags.c_contiguous:
        return features
    if features.dtype.kind not in "fiub":
        raise InvalidFeaturesError(f"features must be numeric, got dtype {features.dtype}")
    return np.ascontiguousarray(features, dtype=np.float32)


def checked_scores(scores: np.ndarray, rows: int, model_version: str) -> np.ndarray:
    """``scores`` when it is one finite value per row, else :class:`ModelScoringError`.

    Every runtime (ONNX Runtime here, OpenVINO, a Triton server) answers through this check.
    """
    if scores.shape != (rows,):
        raise ModelScoringError(
            f"model {model_version} returned shape {scores.shape} for {rows} rows"
        )
    if not np.isfinite(scores).all():
        bad = int(np.count_nonzero(~np.isfinite(scores)))
        raise ModelScoringError(
            f"model {model_version} returned {bad} non-finite score(s) (NaN or inf)"
        )
    return scores
