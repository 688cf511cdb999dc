"""Hugging Face-compatible model directory: ``config.json`` + ``model.safetensors``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from safetensors import SafetensorError

from vigil.inference.metadata import ModelMetadata
from vigil.models.errors import ArtifactError
from vigil.models.mlp import FraudMLP

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "vigil_metadata.json"


def save_hf(model: FraudMLP, directory: Path, metadata: ModelMetadata) -> Path:
    """``save_pretrained`` plus Vigil's metadata (features, threshold, metrics) beside it."""
    model.save_pretrained(directory)
    (directory / METADATA_FILE).write_text(metadata.model_dump_json(indent=2))
    logger.info("wrote Hugging Face model directory %s", directory)
    return directory


def load_hf(directory: Path) -> FraudMLP:
    """``from_pretrained`` with a clear :class:`ArtifactError` for missing or corrupted files."""
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (directory / name).is_file():
            raise ArtifactError(f"Hugging Face model directory {directory} has no {name}")
    try:
        # strict: a tensor missing from, or unknown to, the architecture in config.json (a
        # scaler or encoding buffer, a layer) fails instead of keeping its initial value.
        model = FraudMLP.from_pretrained(directory, strict=True)
    except (SafetensorError, json.JSONDecodeError, TypeError, RuntimeError, OSError) as error:
        raise ArtifactError(
            f"Hugging Face model directory {directory} is corrupted: {error}"
        ) from error
    return model.eval()
