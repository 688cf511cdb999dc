"""From probabilities to decisions: validated scores, threshold labels and reason codes.

Shared by every serving path (API, stream worker, batch scoring). The rule is
``label = 1 (fraud) if score >= threshold else 0``: a score exactly at the threshold is fraud,
so a threshold of 0 flags everything and a threshold of 1 flags only certain frauds.

Reason codes are computed by occlusion of single features and of the feature families among
the model's inputs (:mod:`vigil.inference.reasons`). ``explain`` chooses
for which rows: ``"flagged"`` (default) only for rows labelled fraud, because that is where an
analyst or a customer needs a reason and it keeps the cost of legitimate traffic (over 99 % of
it) at one model row per transaction; ``"all"`` for every row, scored together with the
occluded rows in one model call of N * (F + G + 1) rows (G families); ``"none"`` never.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import numpy as np

from vigil.inference.errors import InvalidFeaturesError, ModelScoringError
from vigil.inference.metadata import ModelMetadata
from vigil.inference.reasons import (
    Occlusions,
    ReasonCode,
    occlusion_contributions,
    occlusions_for,
    top_reasons,
)
from vigil.readonly import readonly

ExplainMode = Literal["flagged", "all", "none"]
TransactionId = int | str

# float32 rounding can land a probability a few ulps outside [0, 1]; more than this is a bug.
SCORE_TOLERANCE = 1e-6


class Scorer(Protocol):
    """Anything that scores raw feature rows under the model contract (e.g. ``OnnxScorer``)."""

    metadata: ModelMetadata

    def score(self, features: np.ndarray) -> np.ndarray:
        """Fraud probabilities [N] for raw features [N, F]."""
        ...


@readonly
class Decision:
    """The answer for one transaction, naming the model that produced it (never changed once
    made: :func:`~vigil.readonly.readonly`, frozen for mypy, cheap to build)."""

    transaction_id: TransactionId
    score: float
    label: int
    threshold: float
    reason_codes: tuple[ReasonCode, ...]
    model_version: str


def validate_scores(scores: np.ndarray, tolerance: float = SCORE_TOLERANCE) -> np.ndarray:
    """Scores clipped to [0, 1]; NaN or beyond ``tolerance`` raises ``ModelScoringError``."""
    scores = np.asarray(scores, dtype=np.float32)
    # Two reductions on the hot path; NaN propagates through min/max and fails the check.
    low, high = float(scores.min(initial=0.0)), float(scores.max(initial=1.0))
    if not (low >= -tolerance and high <= 1.0 + tolerance):
        nans = int(np.count_nonzero(np.isnan(scores)))
        if nans:
            raise ModelScoringError(f"the model returned {nans} NaN score(s)")
        raise ModelScoringError(
            f"the model returned scores in [{low}, {high}], outside [0, 1]: "
            "not a probability (is the sigmoid missing from the exported graph?)"
        )
    return np.clip(scores, 0.0, 1.0) if low < 0.0 or high > 1.0 else scores


def label_scores(scores: np.ndarray, threshold: float) -> np.ndarray:
    """1 (fraud) where ``score >= threshold``, else 0; int8 [N]."""
    return (np.asarray(scores) >= threshold).astype(np.int8)


def _baseline(metadata: ModelMetadata) -> np.ndarray:
    """The row the reason codes occlude toward: a typical genuine payment when the model file
    has one (``reason_baseline``), else the training means (models written before it).

    The means are no ordinary payment where features are mostly-zero counts: a model with
    verdict features can score its own mean row as fraud, and then no occlusion lowers the
    score (ADR 0024, demo scene 15)."""
    baseline = metadata.reason_baseline
    return np.asarray(metadata.feature_means if baseline is None else baseline, dtype=np.float32)


def _occlusions(metadata: ModelMetadata) -> Occlusions:
    return occlusions_for(tuple(metadata.feature_names))


def decide(
    scorer: Scorer,
    transaction_ids: Sequence[TransactionId],
    features: np.ndarray,
    reason_codes: int = 3,
    explain: ExplainMode = "flagged",
) -> list[Decision]:
    """Score raw feature rows [N, F] with one scorer and turn them into decisions."""
    metadata = scorer.metadata
    features = np.asarray(features)
    n_features = len(metadata.feature_names)
    if features.ndim != 2 or features.shape != (len(transaction_ids), n_features):
        raise InvalidFeaturesError(
            f"expected features of shape [{len(transaction_ids)}, {n_features}] "
            f"for {len(transaction_ids)} transaction(s), got {list(features.shape)}"
        )
    explaining = reason_codes > 0 and explain != "none"
    reasons: list[tuple[ReasonCode, ...]] = [()] * len(transaction_ids)
    if explaining and explain == "all":
        occlusions = _occlusions(metadata)
        raw, contributions = occlusion_contributions(
            scorer.score, features, _baseline(metadata), occlusions=occlusions
        )
        scores = validate_scores(raw)
        reasons = top_reasons(contributions, metadata.feature_names, reason_codes, occlusions)
    else:
        scores = validate_scores(scorer.score(features))
    labels = label_scores(scores, metadata.threshold)
    if explaining and explain == "flagged" and labels.any():
        flagged = np.flatnonzero(labels)
        occlusions = _occlusions(metadata)
        _, contributions = occlusion_contributions(
            scorer.score, features[flagged], _baseline(metadata), scores[flagged], occlusions
        )
        for row, row_reasons in zip(
            flagged.tolist(),
            top_reasons(contributions, metadata.feature_names, reason_codes, occlusions),
            strict=True,
        ):
            reasons[row] = row_reasons
    return [
        Decision(tid, score, label, metadata.threshold, row_reasons, metadata.model_version)
        for tid, score, label, row_reasons in zip(
            transaction_ids, scores.tolist(), labels.tolist(), reasons, strict=True
        )
    ]
