"""Reason codes for a signal that several features repeat: feature families are occluded too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_decision import CountingScorer

from onnx_factory import any_of_model, logistic_model, make_metadata, save
from vigil.config import FeaturesConfig
from vigil.features.definitions import (
    DAYS_SINCE_FIRST_VERDICT_COMPROMISE,
    TX_AMOUNT,
    TX_DURING_NIGHT,
    feature_families,
    feature_names,
    terminal_risk,
)
from vigil.inference.decision import decide
from vigil.inference.reasons import (
    FeatureGroup,
    Occlusions,
    occluded_batch,
    occlusion_contributions,
    occlusions_for,
    top_reasons,
)
from vigil.inference.scorer import OnnxScorer

FRAUDS, MARKED = "terminal_id_verdict_nb_fraud_28day_window", DAYS_SINCE_FIRST_VERDICT_COMPROMISE
NAMES = [TX_AMOUNT, FRAUDS, MARKED, TX_DURING_NIGHT]
MEANS = np.array([50.0, 0.1, 0.2, 0.2])
# Row 0: the terminal is known compromised by both verdict features; row 1: an ordinary payment.
ROWS = np.array([[60.0, 3.0, 3.0, 0.0], [40.0, 0.0, 0.0, 0.0]], dtype=np.float32)


@pytest.fixture
def duplicated(tmp_path: Path) -> CountingScorer:
    """A model that flags when EITHER verdict feature signals: the two carry one signal."""
    metadata = make_metadata(NAMES, MEANS.tolist(), threshold=0.5)
    path = save(any_of_model([1, 2], gain=2.0, bias=-3.0, metadata=metadata), tmp_path / "m.onnx")
    return CountingScorer(OnnxScorer.load(path))


def test_duplicated_signal_is_named_by_its_family(duplicated: CountingScorer) -> None:
    fraud, legit = decide(duplicated, [1, 2], ROWS, reason_codes=3, explain="flagged")
    assert fraud.label == 1 and legit.label == 0
    occlusions = occlusions_for(tuple(NAMES))
    # One model call to score, one for the flagged row's F single and G family occlusions.
    assert duplicated.calls == [2, occlusions.width] and len(occlusions.groups) == 1
    # Replacing either verdict feature alone leaves the other one signalling: nothing moves.
    _, contributions = occlusion_contributions(duplicated.score, ROWS[:1], MEANS, None, occlusions)
    assert top_reasons(contributions[:, : len(NAMES)], NAMES, 3) == [()]
    # Replacing both is what lowers the score: the family is the reason, with its drop.
    at_baseline = 1.0 / (1.0 + np.exp(-(2.0 * MEANS[2] - 3.0)))
    assert [r.feature for r in fraud.reason_codes] == ["terminal_verdicts"]
    assert fraud.reason_codes[0].contribution == pytest.approx(fraud.score - at_baseline, abs=1e-6)
    assert legit.reason_codes == ()


def test_independent_members_keep_their_own_reasons(tmp_path: Path) -> None:
    """Where the family's members act one by one (a family explains no more than they do
    together), the members are named, not the family."""
    metadata = make_metadata(NAMES, MEANS.tolist(), threshold=0.5)
    path = save(logistic_model([0.0, 0.3, 0.2, 0.0], -1.0, metadata), tmp_path / "m.onnx")
    scorer = OnnxScorer.load(path)
    row = np.array([[50.0, 1.5, 1.2, 0.2]], dtype=np.float32)  # logit around 0: near-linear
    (decision,) = decide(scorer, [1], row, reason_codes=3, explain="all")
    assert [r.feature for r in decision.reason_codes] == [FRAUDS, MARKED]


def test_families_and_members_are_never_both_named() -> None:
    occlusions = Occlusions(3, [FeatureGroup("pair", (0, 1))])
    # Columns: a, b, c, then the family (a, b). Row 0: the family wins; row 1: its members do.
    contributions = np.array([[0.01, 0.02, 0.05, 0.4], [0.2, 0.1, 0.05, 0.25]])
    reasons = top_reasons(contributions, ["a", "b", "c"], 3, occlusions)
    assert [[r.feature for r in row] for row in reasons] == [["pair", "c"], ["a", "b", "c"]]


def test_occluded_batch_adds_one_row_per_family() -> None:
    occlusions = occlusions_for(tuple(NAMES))
    batch = occluded_batch(ROWS, MEANS.astype(np.float32), occlusions)
    width = len(NAMES) + 1
    assert batch.shape == (2 * width, len(NAMES))
    for n in range(2):
        expected = ROWS[n].copy()
        expected[[1, 2]] = MEANS[[1, 2]]
        np.testing.assert_array_equal(batch[n * width + len(NAMES)], expected)
        np.testing.assert_array_equal(batch[n * width], [MEANS[0], *ROWS[n, 1:]])


def test_families_of_the_full_feature_set_are_disjoint_and_named() -> None:
    names = feature_names(FeaturesConfig(extended=True, verdicts=True))
    families = feature_families(names)
    members = [name for family in families.values() for name in family]
    assert len(members) == len(set(members))  # a feature is in one family at most
    assert not set(families) & set(names)  # a family name never reads as a feature name
    verdicts = families["terminal_verdicts"]
    assert MARKED in verdicts and all(n.startswith("terminal_id") for n in verdicts)
    assert families["terminal_risk"] == [terminal_risk(n) for n in (1, 7, 30)]
    assert TX_AMOUNT not in members


def test_a_family_needs_two_members_among_the_inputs() -> None:
    assert feature_families([TX_AMOUNT, terminal_risk(7), FRAUDS]) == {}
