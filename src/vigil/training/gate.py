"""Promotion gate: champion vs challenger on recently labelled data, with bootstrap intervals.

Both models score the same transactions. The gate compares average precision (AP) and the
handbook's card precision@k (CP@k) with paired bootstrap confidence intervals of the
difference (challenger - champion): transactions are resampled for AP, days for CP@k (it is
a per-day figure). A challenger is promoted only when it is better: the AP gain's lower
bound exceeds ``min_gain`` and its CP@k is not lower than the champion's.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from vigil.data.schema import CUSTOMER_ID, TX_DATETIME, TX_FRAUD
from vigil.fraud_metrics import average_precision, card_precision_at_k_per_day
from vigil.inference.scorer import OnnxScorer

logger = logging.getLogger(__name__)

AP = "average_precision"
CP_AT_K = "card_precision_at_k"


@dataclass(frozen=True)
class GatePolicy:
    """How the gate compares: window, k, bootstrap size, confidence and required gain."""

    recent_days: int = 7
    top_k: int = 100
    n_bootstrap: int = 300
    confidence: float = 0.95
    min_gain: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class MetricComparison:
    """One metric for both models and the bootstrap interval of their difference."""

    metric: str
    champion: float
    challenger: float
    difference: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class GateDecision:
    """The verdict and the evidence behind it."""

    promote: bool
    reason: str
    n_transactions: int
    n_days: int
    comparisons: tuple[MetricComparison, ...]

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (for the API, the CLI and MLflow)."""
        return {
            "promote": self.promote,
            "reason": self.reason,
            "n_transactions": self.n_transactions,
            "n_days": self.n_days,
            "comparisons": [asdict(c) for c in self.comparisons],
        }


@dataclass(frozen=True)
class PairedScores:
    """Labelled transactions scored by both models (flat arrays of equal length)."""

    days: NDArray
    cards: NDArray
    labels: NDArray
    champion: NDArray
    challenger: NDArray


def _interval(samples: NDArray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return float(low), float(high)


def _compare_ap(
    data: PairedScores, policy: GatePolicy, rng: np.random.Generator
) -> MetricComparison:
    champion = average_precision(data.labels, data.champion)
    challenger = average_precision(data.labels, data.challenger)
    n = data.labels.size
    gains = []
    for _ in range(policy.n_bootstrap):
        idx = rng.integers(0, n, n)
        labels = data.labels[idx]
        if labels.min() == labels.max():  # a resample without fraud says nothing about AP
            continue
        gains.append(
            average_precision(labels, data.challenger[idx])
            - average_precision(labels, data.champion[idx])
        )
    if not gains:
        raise ValueError("too few frauds in the recent labelled data to bootstrap AP")
    low, high = _interval(np.asarray(gains), policy.confidence)
    return MetricComparison(AP, champion, challenger, challenger - champion, low, high)


def _compare_cp(
    data: PairedScores, policy: GatePolicy, rng: np.random.Generator
) -> MetricComparison:
    k = policy.top_k
    champion_days = np.asarray(
        card_precision_at_k_per_day(data.days, data.cards, data.labels, data.champion, k)
    )
    challenger_days = np.asarray(
        card_precision_at_k_per_day(data.days, data.cards, data.labels, data.challenger, k)
    )
    per_day_gain = challenger_days - champion_days
    idx = rng.integers(0, per_day_gain.size, (policy.n_bootstrap, per_day_gain.size))
    low, high = _interval(per_day_gain[idx].mean(axis=1), policy.confidence)
    champion, challenger = float(champion_days.mean()), float(challenger_days.mean())
    return MetricComparison(CP_AT_K, champion, challenger, challenger - champion, low, high)


def compare(data: PairedScores, policy: GatePolicy) -> GateDecision:
    """Compare both models' scores and decide whether the challenger is better."""
    rng = np.random.default_rng(policy.seed)
    ap = _compare_ap(data, policy, rng)
    cp = _compare_cp(data, policy, rng)
    interval = f"{policy.confidence:.0%} interval [{ap.ci_low:+.4f}, {ap.ci_high:+.4f}]"
    if ap.ci_high < 0:
        promote = False
        reason = f"challenger AP is worse by {-ap.difference:.4f} ({interval})"
    elif ap.ci_low <= policy.min_gain:
        promote = False
        reason = (
            f"AP gain {ap.difference:+.4f} not significant: {interval} "
            f"does not lie above {policy.min_gain:+.4f}"
        )
    elif cp.difference < 0:
        promote = False
        reason = f"AP better but CP@{policy.top_k} lower ({cp.difference:+.4f})"
    else:
        promote = True
        reason = (
            f"AP gain {ap.difference:+.4f} (interval [{ap.ci_low:+.4f}, {ap.ci_high:+.4f}]), "
            f"CP@{policy.top_k} gain {cp.difference:+.4f}"
        )
    logger.info("promotion gate: %s (%s)", "promote" if promote else "keep champion", reason)
    return GateDecision(
        promote, reason, int(data.labels.size), int(np.unique(data.days).size), (ap, cp)
    )


def recent_labelled(features: pd.DataFrame, days: int) -> pd.DataFrame:
    """The labelled rows of the last ``days`` calendar days of a feature table."""
    labelled = features[features[TX_FRAUD].notna()]
    if labelled.empty:
        raise ValueError("the feature table holds no labelled transaction")
    last_day = labelled[TX_DATETIME].max().normalize()
    return labelled[labelled[TX_DATETIME] >= last_day - pd.Timedelta(days=days - 1)]


def score_pair(frame: pd.DataFrame, champion: OnnxScorer, challenger: OnnxScorer) -> PairedScores:
    """Score a labelled feature frame with both models (each in its own feature order)."""
    for scorer in (champion, challenger):
        missing = sorted(set(scorer.feature_names) - set(frame.columns))
        if missing:
            raise ValueError(f"model {scorer.model_version} needs missing features {missing}")
    return PairedScores(
        days=frame[TX_DATETIME].dt.normalize().to_numpy(),
        cards=frame[CUSTOMER_ID].to_numpy(),
        labels=frame[TX_FRAUD].to_numpy().astype(np.int8),
        champion=champion.score(frame[list(champion.feature_names)].to_numpy()),
        challenger=challenger.score(frame[list(challenger.feature_names)].to_numpy()),
    )


def run_gate(
    champion_model: Path, challenger_model: Path, features: pd.DataFrame, policy: GatePolicy
) -> GateDecision:
    """Load both ONNX models, score the recent labelled window and decide."""
    window = recent_labelled(features, policy.recent_days)
    pair = score_pair(window, OnnxScorer.load(champion_model), OnnxScorer.load(challenger_model))
    return compare(pair, policy)
