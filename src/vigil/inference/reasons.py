"""Reason codes by occlusion: which features pushed a score up, without torch or gradients.

For a row ``x`` and each feature ``i``, the contribution of ``i`` is ``score(x) - score(x with
x_i replaced by the baseline value of i)``: how much the score would drop if that feature were
ordinary. The baseline is the model file's ``reason_baseline`` (the per-feature median of the
genuine training rows: a typical genuine payment), or its training means in models written
before that field (:func:`vigil.inference.decision.decide` picks it). For the logistic model the
ranking is exactly the ranking of ``w_i * (x_i - baseline_i)``.

Single features miss a signal that several features repeat: a compromised terminal shows in
its verdict counts, its verdict fraud share, its compromised marks and the days since the first
mark, so replacing any one of them leaves the others signalling, the score barely moves, and a
flagged payment would get no reason at all. So each *feature family* the feature definitions
declare (:func:`vigil.features.definitions.feature_families`: windows of one quantity, one
entity's verdicts, the amount against the card's habit, the terminal's known fraud run) is also
occluded as a whole, in the same batch. A family replaces its members in the answer when its
joint contribution exceeds what its members explain one at a time (the sum of their positive
single contributions): then the signal is shared and the family is the honest reason; otherwise
its members stand alone, as before. This rule rather than "families only when no single feature
explains enough": it needs no threshold on "enough", it never counts one signal twice (a family
or its members, not both), and a model whose features act independently keeps its
single-feature reasons. A reason's ``feature`` is thus a model input or a family name (the two
never clash: family names carry no ``_id_``).

Occlusion explains only against a baseline that is itself an ordinary payment: a model that
scores its own training means as fraud (seen on demo-world models with verdict features, whose
mostly-zero counts have means no payment has) gets contributions near zero from any
occlusion, single or family. Hence the genuine median as baseline (ADR 0024).

All occluded rows of a batch (F singles and G families per row) go through the model in one
call, so the cost is one run over ``N * (F + G)`` rows instead of ``N * (F + G)`` runs. It works
for any model kind (MLP, LightGBM, logistic) behind the same ONNX contract.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from vigil.features.definitions import feature_families

ScoreFn = Callable[[np.ndarray], np.ndarray]

# A family must beat its members by more than float32 noise on a probability to replace them.
FAMILY_MARGIN = 1e-6


@dataclass(frozen=True, slots=True)
class ReasonCode:
    """A feature (or a feature family) that pushed a score up, and by how much (probability)."""

    feature: str
    contribution: float


@dataclass(frozen=True, slots=True)
class FeatureGroup:
    """Features occluded together: a family name and its members' column positions."""

    name: str
    members: tuple[int, ...]


class Occlusions:
    """Which columns each occluded copy of a row sets to baseline: copy ``i < F`` the single
    feature ``i``, copy ``F + g`` every member of group ``g``. Index arrays built once per model
    (:func:`occlusions_for`), so the hot path only gathers and scatters."""

    def __init__(self, n_features: int, groups: Sequence[FeatureGroup] = ()) -> None:
        self.n_features = n_features
        self.groups = tuple(groups)
        self.width = n_features + len(self.groups)  # occluded copies per row: F + G
        self.group_names = [group.name for group in self.groups]
        member_group = [g for g, group in enumerate(self.groups) for _ in group.members]
        self.members = np.array([m for group in self.groups for m in group.members], np.intp)
        self.member_group = np.array(member_group, np.intp)
        singles = np.arange(n_features, dtype=np.intp)
        self.rows = np.concatenate([singles, n_features + self.member_group])
        self.columns = np.concatenate([singles, self.members])
        self.membership = np.zeros((n_features, len(self.groups)))  # [F, G], 1 = member
        self.membership[self.members, self.member_group] = 1.0
        for array in (self.members, self.member_group, self.rows, self.columns, self.membership):
            array.flags.writeable = False  # shared by every call through the cache


@lru_cache(maxsize=32)
def occlusions_for(feature_names: tuple[str, ...]) -> Occlusions:
    """Single features and the declared feature families among a model's inputs (cached)."""
    position = {name: i for i, name in enumerate(feature_names)}
    groups = [
        FeatureGroup(family, tuple(position[name] for name in members))
        for family, members in feature_families(feature_names).items()
    ]
    return Occlusions(len(feature_names), groups)


def occluded_batch(
    features: np.ndarray, baseline: np.ndarray, occlusions: Occlusions | None = None
) -> np.ndarray:
    """[N * (F + G), F] rows: row ``n * (F + G) + i`` is ``features[n]`` with feature ``i``
    (``i < F``) or every member of group ``i - F`` set to baseline (no groups when
    ``occlusions`` is None)."""
    n_rows, n_features = features.shape
    occlusions = occlusions or Occlusions(n_features)
    occluded = np.repeat(features[:, np.newaxis, :], occlusions.width, axis=1)  # [N, F + G, F]
    occluded[:, occlusions.rows, occlusions.columns] = baseline[occlusions.columns]
    return occluded.reshape(n_rows * occlusions.width, n_features)


def occlusion_contributions(
    score_fn: ScoreFn,
    features: np.ndarray,
    baseline: np.ndarray,
    scores: np.ndarray | None = None,
    occlusions: Occlusions | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Scores [N] and contributions [N, F + G] (features, then groups) from ONE model call.

    When ``scores`` are already known they are reused and the call covers N * (F + G) rows;
    otherwise the original rows ride along and the call covers N * (F + G + 1) rows.
    """
    features = np.ascontiguousarray(features, dtype=np.float32)
    n_rows = features.shape[0]
    occluded = occluded_batch(features, baseline.astype(np.float32, copy=False), occlusions)
    if scores is None:
        all_scores = score_fn(np.concatenate([features, occluded]))
        scores, occluded_scores = all_scores[:n_rows], all_scores[n_rows:]
    else:
        occluded_scores = score_fn(occluded)
    contributions = scores[:, np.newaxis] - occluded_scores.reshape(n_rows, -1)
    return scores, contributions


def _families_over_members(contributions: np.ndarray, occlusions: Occlusions) -> np.ndarray:
    """Contributions [N, F + G] with, per row, either a group or its members left (the other
    side set to -inf): the group where it explains more than its members one at a time."""
    n_features = occlusions.n_features
    singles, joint = contributions[:, :n_features], contributions[:, n_features:]
    explained_alone = np.maximum(singles, 0.0) @ occlusions.membership  # [N, G]
    family_wins = joint > explained_alone + FAMILY_MARGIN
    left = np.concatenate([singles, np.where(family_wins, joint, -np.inf)], axis=1)
    members = occlusions.members
    left[:, members] = np.where(family_wins[:, occlusions.member_group], -np.inf, left[:, members])
    return left


def top_reasons(
    contributions: np.ndarray,
    feature_names: Sequence[str],
    k: int,
    occlusions: Occlusions | None = None,
) -> list[tuple[ReasonCode, ...]]:
    """Per row, up to ``k`` features or groups with the largest positive contribution, largest
    first; a group and its members are never both named."""
    if k <= 0 or contributions.size == 0:
        return [() for _ in range(contributions.shape[0])]
    names = list(feature_names)
    if occlusions is not None and occlusions.groups:
        contributions = _families_over_members(contributions, occlusions)
        names += occlusions.group_names
    k = min(k, contributions.shape[1])
    order = np.argsort(-contributions, axis=1, kind="stable")[:, :k]
    picked = np.take_along_axis(contributions, order, axis=1)
    return [
        tuple(
            ReasonCode(names[i], float(c))
            for i, c in zip(row_order, row_values, strict=True)
            if c > 0
        )
        for row_order, row_values in zip(order.tolist(), picked.tolist(), strict=True)
    ]
