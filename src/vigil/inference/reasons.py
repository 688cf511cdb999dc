"""Reason codes by occlusion: which features pushed a score up, without torch or gradients.

For a row ``x`` and each feature ``i``, the contribution of ``i`` is ``score(x) - score(x with
x_i replaced by the training mean of i)``: how much the score would drop if that feature were
ordinary. All occluded rows of a batch go through the model in one call, so the cost is one
run over ``N * F`` rows instead of ``N * F`` runs. It works for any model kind (MLP, LightGBM,
logistic) behind the same ONNX contract, and for the logistic model its ranking is exactly the
ranking of ``w_i * (x_i - mean_i)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

ScoreFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True, slots=True)
class ReasonCode:
    """One feature that pushed a score up, and by how much (in probability)."""

    feature: str
    contribution: float


def occluded_batch(features: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """[N * F, F] rows: row ``n * F + i`` is ``features[n]`` with feature ``i`` set to baseline."""
    n_rows, n_features = features.shape
    occluded = np.repeat(features[:, np.newaxis, :], n_features, axis=1)  # [N, F, F]
    diagonal = np.arange(n_features)
    occluded[:, diagonal, diagonal] = baseline
    return occluded.reshape(n_rows * n_features, n_features)


def occlusion_contributions(
    score_fn: ScoreFn,
    features: np.ndarray,
    baseline: np.ndarray,
    scores: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Scores [N] and contributions [N, F] from ONE model call.

    When ``scores`` are already known they are reused and the call covers N * F rows;
    otherwise the original rows ride along and the call covers N * (F + 1) rows.
    """
    features = np.ascontiguousarray(features, dtype=np.float32)
    n_rows, n_features = features.shape
    occluded = occluded_batch(features, baseline.astype(np.float32, copy=False))
    if scores is None:
        all_scores = score_fn(np.concatenate([features, occluded]))
        scores, occluded_scores = all_scores[:n_rows], all_scores[n_rows:]
    else:
        occluded_scores = score_fn(occluded)
    contributions = scores[:, np.newaxis] - occluded_scores.reshape(n_rows, n_features)
    return scores, contributions


def top_reasons(
    contributions: np.ndarray, feature_names: Sequence[str], k: int
) -> list[tuple[ReasonCode, ...]]:
    """Per row, up to ``k`` features with the largest positive contribution, largest first."""
    if k <= 0 or contributions.size == 0:
        return [() for _ in range(contributions.shape[0])]
    k = min(k, contributions.shape[1])
    order = np.argsort(-contributions, axis=1, kind="stable")[:, :k]
    picked = np.take_along_axis(contributions, order, axis=1)
    return [
        tuple(
            ReasonCode(feature_names[i], float(c))
            for i, c in zip(row_order, row_values, strict=True)
            if c > 0
        )
        for row_order, row_values in zip(order.tolist(), picked.tolist(), strict=True)
    ]
