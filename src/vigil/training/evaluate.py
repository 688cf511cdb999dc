"""The DVC pipeline's ``evaluate`` and hold-out steps: metrics and plot data from files.

``evaluate`` scores the handbook test period of the feature table with the exported ONNX
model (exactly what serving would run) and writes ``metrics.json`` plus CSV series that
``dvc plots`` draws: the precision-recall curve and card precision@k per day.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from vigil import fraud_metrics as metrics
from vigil.config import Settings
from vigil.data.schema import CUSTOMER_ID, TX_DATETIME, TX_FRAUD
from vigil.inference.scorer import OnnxScorer
from vigil.training.splits import handbook_split

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
PR_CURVE_FILE = "pr_curve.csv"
CP_PER_DAY_FILE = "cp_at_k_per_day.csv"
CURVE_POINTS = 200


@dataclass(frozen=True)
class EvaluationFiles:
    """Where the evaluation wrote its metrics and plot series."""

    metrics: Path
    pr_curve: Path
    cp_per_day: Path


def precision_recall_points(
    labels: np.ndarray, scores: np.ndarray, points: int = CURVE_POINTS
) -> pd.DataFrame:
    """Precision and recall when flagging the top-n scores, at ``points`` evenly spaced n."""
    order = np.argsort(-scores, kind="mergesort")
    true_positives = np.cumsum(labels[order])
    flagged = np.arange(1, labels.size + 1)
    picks = np.unique(np.linspace(0, labels.size - 1, points).astype(int))
    return pd.DataFrame(
        {
            "recall": true_positives[picks] / max(int(labels.sum()), 1),
            "precision": true_positives[picks] / flagged[picks],
        }
    )


def evaluate_model(
    settings: Settings, model_path: Path, features_path: Path, out_dir: Path
) -> EvaluationFiles:
    """Score the test period with the ONNX model; write metrics and plot series."""
    scorer = OnnxScorer.load(model_path)
    test = handbook_split(pd.read_parquet(features_path), settings.train).test
    scores = scorer.score(test[list(scorer.feature_names)].to_numpy())
    labels = test[TX_FRAUD].to_numpy().astype(np.int8)
    days = test[TX_DATETIME].dt.normalize().to_numpy()
    cards = test[CUSTOMER_ID].to_numpy()
    config = settings.train
    figures = metrics.evaluate_scores(
        days,
        cards,
        labels,
        scores,
        scorer.metadata.threshold,
        config.cost_missed_fraud,
        config.cost_false_alarm,
        config.top_k_cards,
    )
    per_day = metrics.card_precision_at_k_per_day(days, cards, labels, scores, config.top_k_cards)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = EvaluationFiles(
        out_dir / METRICS_FILE, out_dir / PR_CURVE_FILE, out_dir / CP_PER_DAY_FILE
    )
    summary = {
        "model_version": scorer.model_version,
        "test_transactions": int(labels.size),
        "test_frauds": int(labels.sum()),
        "threshold": scorer.metadata.threshold,
        **figures,
    }
    files.metrics.write_text(json.dumps(summary, indent=2))
    precision_recall_points(labels, scores).to_csv(files.pr_curve, index=False)
    day_names = [str(d)[:10] for d in np.unique(days)]
    pd.DataFrame({"day": day_names, "card_precision_at_k": per_day}).to_csv(
        files.cp_per_day, index=False
    )
    logger.info("evaluated %s on %d test rows: %s", scorer.model_version, labels.size, figures)
    return files


def write_holdout(features_path: Path, start: date, output_path: Path) -> int:
    """The feature rows from ``start`` on (the period batch scoring runs on); returns rows."""
    frame = pd.read_parquet(features_path)
    holdout = frame[frame[TX_DATETIME] >= pd.Timestamp(start)]
    if holdout.empty:
        raise ValueError(f"no transaction in {features_path} on or after {start}")
    output_path.parent.mkdir(parents=True, exist_ok=True)
    holdout.to_parquet(output_path, index=False)
    return len(holdout)
