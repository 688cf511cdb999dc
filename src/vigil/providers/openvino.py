"""OpenVINO Runtime (CPU) beside ONNX Runtime: the same exported model, converted, and int8.

:func:`export_ir` converts the model contract's ONNX file to OpenVINO IR (``model.xml`` +
``model.bin``) in fp32 — OpenVINO's default would store fp16 weights, which breaks parity with
ONNX Runtime. :func:`quantize_int8` is OpenVINO's post-training quantisation (NNCF) calibrated
on feature rows. :class:`OpenVinoScorer` scores either: an
:class:`~vigil.inference.scorer.OnnxScorer` (the file's contract, metadata and checks) whose
``score`` runs on OpenVINO, so both are interchangeable wherever a scorer is taken.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import openvino as ov

from vigil.inference.errors import ModelLoadError, ModelScoringError
from vigil.inference.scorer import OnnxScorer, as_batch, checked_scores

logger = logging.getLogger(__name__)


def _cpu_config(threads: int) -> dict[str, str]:
    """One stream, ``threads`` threads, fp32 arithmetic (no bf16 on CPUs that have it)."""
    return {
        "INFERENCE_NUM_THREADS": str(threads),
        "NUM_STREAMS": "1",
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "f32",
    }


def export_ir(onnx_path: Path, out_dir: Path) -> Path:
    """Convert an ONNX model file to fp32 OpenVINO IR in ``out_dir``; returns ``model.xml``."""
    model = ov.convert_model(str(onnx_path))
    xml = Path(out_dir) / "model.xml"
    xml.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(xml), compress_to_fp16=False)
    return xml


def quantize_int8(onnx_path: Path, calibration: np.ndarray, out_dir: Path) -> Path:
    """Post-training int8 quantisation (NNCF) calibrated on raw feature rows [N, F].

    Returns the int8 IR's ``model.xml`` in ``out_dir``. The rows should be real traffic
    (e.g. rows sampled over the feature table); up to 1,000 rows are used.
    """
    import nncf  # offline step only: neither scoring nor serving imports NNCF

    rows = np.ascontiguousarray(calibration[:1000], dtype=np.float32)
    dataset = nncf.Dataset([rows[i : i + 1] for i in range(len(rows))])
    quantized = nncf.quantize(ov.convert_model(str(onnx_path)), dataset, subset_size=len(rows))
    xml = Path(out_dir) / "model.xml"
    xml.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(xml), compress_to_fp16=False)
    return xml


class OpenVinoScorer(OnnxScorer):
    """The model file's contract and metadata, scored by OpenVINO Runtime on the CPU."""

    _request: ov.InferRequest

    @classmethod
    def from_files(
        cls, onnx_path: Path, ir_path: Path | None = None, threads: int = 1
    ) -> OpenVinoScorer:
        """Contract and metadata from ``onnx_path``; the graph compiled from ``ir_path`` or it."""
        local = OnnxScorer.load(onnx_path, threads)
        source = Path(ir_path or onnx_path)
        try:
            compiled = ov.Core().compile_model(str(source), "CPU", _cpu_config(threads))
        except RuntimeError as error:
            raise ModelLoadError(f"OpenVINO cannot compile {source}: {error}") from error
        scorer = cls(local._session, local.metadata, source)
        scorer._request = compiled.create_infer_request()
        logger.info("compiled %s for OpenVINO CPU from %s", local.model_version, source)
        return scorer

    def score(self, features: np.ndarray) -> np.ndarray:
        """Fraud probabilities, float32 [N], for raw features [N, F]."""
        batch = as_batch(features, self.feature_names)
        try:
            result = self._request.infer({0: batch})
        except RuntimeError as error:
            raise ModelScoringError(f"model {self.model_version} failed: {error}") from error
        return checked_scores(np.asarray(result[0], np.float32), len(batch), self.model_version)
