"""Write a run's artifacts: metrics, config, plots, ONNX, Hugging Face dir, TorchServe .mar."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import onnx

from vigil.config import Settings, write_settings
from vigil.inference.metadata import ModelMetadata
from vigil.models.export_hf import save_hf
from vigil.models.export_mar import build_mar
from vigil.models.export_onnx import export_onnx, write_onnx
from vigil.models.kinds import FraudModel
from vigil.models.mlp import FraudMLP
from vigil.training import plots
from vigil.training.trainer import EpochRecord

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.yaml"
ONNX_FILE = "model.onnx"
HF_DIR = "hf"
LIGHTGBM_FILE = "lightgbm.txt"  # the booster's own format: what a warm start continues from
PLOTS_DIR = "plots"


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    """Pretty JSON (``metrics.json``)."""
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path


def write_plots(
    directory: Path,
    test: tuple[np.ndarray, np.ndarray],
    summary: dict[str, Any],
    history: Sequence[EpochRecord],
) -> None:
    """ROC, precision-recall and score histogram on test; training curves for the MLP."""
    directory.mkdir(exist_ok=True)
    labels, scores = test
    plots.plot_roc(labels, scores, summary["test"]["auc_roc"], directory / "roc.png")
    ap = summary["test"]["average_precision"]
    plots.plot_precision_recall(labels, scores, ap, directory / "precision_recall.png")
    hist_path = directory / "score_histogram.png"
    plots.plot_score_histogram(labels, scores, summary["threshold"], hist_path)
    if history:
        plots.plot_training_curves(history, directory / "training_curves.png")


def write_run(
    run_dir: Path,
    model: FraudModel,
    metadata: ModelMetadata,
    summary: dict[str, Any],
    settings: Settings,
    test: tuple[np.ndarray, np.ndarray],
    history: Sequence[EpochRecord],
) -> None:
    """Every artifact of a finished run, in ``run_dir``."""
    write_json(run_dir / METRICS_FILE, summary)
    write_settings(run_dir / CONFIG_FILE, settings)
    write_plots(run_dir / PLOTS_DIR, test, summary, history)
    n_features = len(metadata.feature_names)
    export_onnx(model, n_features, metadata, run_dir / ONNX_FILE)
    if isinstance(model, FraudMLP):
        save_hf(model, run_dir / HF_DIR, metadata)
    if isinstance(model, lightgbm.LGBMClassifier | lightgbm.Booster):
        booster = model.booster_ if isinstance(model, lightgbm.LGBMClassifier) else model
        booster.save_model(str(run_dir / LIGHTGBM_FILE))
    build_mar(model, run_dir / ONNX_FILE, metadata, run_dir)
    logger.info("run artifacts written to %s", run_dir)


def promote(run_dir: Path, model_path: Path) -> Path:
    """Copy the run's ONNX model to the serving path atomically (a watcher sees old or new)."""
    source = run_dir / ONNX_FILE
    if not source.is_file():
        raise FileNotFoundError(f"run {run_dir} has no {ONNX_FILE} to promote")
    write_onnx(onnx.load(str(source)), model_path)
    logger.info("promoted %s to %s", source, model_path)
    return model_path
