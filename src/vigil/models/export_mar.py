"""TorchServe model archive (``model.mar``) built with ``torch-model-archiver``.

The MLP goes in as TorchScript (TorchServe's native format); baselines go in as their ONNX
graph (TorchServe's ORT path). Both are served by the same custom ``handler.py``.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import torch

from vigil.inference.metadata import ModelMetadata
from vigil.models import handler
from vigil.models.errors import ArtifactError
from vigil.models.kinds import FraudModel
from vigil.models.mlp import FraudMLP, ProbabilityHead

logger = logging.getLogger(__name__)

ARCHIVE_NAME = "model"


def _archiver() -> str:
    """The ``torch-model-archiver`` executable beside this interpreter, else on PATH."""
    beside = Path(sys.executable).with_name("torch-model-archiver")
    found = str(beside) if beside.is_file() else shutil.which("torch-model-archiver")
    if found is None:
        raise ArtifactError("torch-model-archiver is not installed (pip install '.[train]')")
    return found


def _write_torchscript(model: FraudMLP, n_features: int, path: Path) -> Path:
    head = ProbabilityHead(model).eval()
    with warnings.catch_warnings():
        # TorchServe loads TorchScript; torch marks jit.trace deprecated in favour of export.
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(head, torch.zeros(2, n_features))
    traced.save(str(path))
    return path


def build_mar(
    model: FraudModel, onnx_path: Path, metadata: ModelMetadata, export_dir: Path
) -> Path:
    """Archive the model, its metadata and the handler as ``export_dir/model.mar``."""
    with tempfile.TemporaryDirectory(prefix="vigil-mar-") as staging_name:
        staging = Path(staging_name)
        n_features = len(metadata.feature_names)
        if isinstance(model, FraudMLP):
            serialized = _write_torchscript(model, n_features, staging / "model.pt")
        else:
            serialized = Path(shutil.copy(onnx_path, staging / "model.onnx"))
        meta_file = staging / handler.METADATA_FILE
        meta_file.write_text(json.dumps(metadata.model_dump(mode="json"), indent=2))
        command = [
            _archiver(),
            "--model-name", ARCHIVE_NAME,
            "--version", "1.0",
            "--serialized-file", str(serialized),
            "--handler", str(Path(handler.__file__)),
            "--extra-files", str(meta_file),
            "--export-path", str(export_dir),
            "--force",
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ArtifactError(f"torch-model-archiver failed: {result.stderr.strip()}")
    path = export_dir / f"{ARCHIVE_NAME}.mar"
    logger.info("wrote TorchServe archive %s", path)
    return path
