"""Decisions: threshold rule, score validation, occlusion reason codes on a hand-made model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from onnx_factory import logistic_model, make_metadata, save
from vigil.inference.decision import decide, label_scores, validate_scores
from vigil.inference.errors import InvalidFeaturesError, ModelScoringError
from vigil.inference.metadata import ModelMetadata
from vigil.inference.reasons import ReasonCode, occluded_batch
from vigil.inference.scorer import OnnxScorer

NAMES = ["tx_amount", "tx_during_night", "terminal_id_risk_7day_window", "customer_nb_tx"]
WEIGHTS = np.array([0.02, 1.5, 4.0, -0.3])
MEANS = np.array([50.0, 0.2, 0.05, 3.0])
BIAS = -2.0
THRESHOLD = 0.5


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


class CountingScorer:
    """Wraps a scorer and records the row count of every model call."""

    def __init__(self, scorer: OnnxScorer) -> None:
        self.metadata: ModelMetadata = scorer.metadata
        self._scorer = scorer
        self.calls: list[int] = []

    def score(self, features: np.ndarray) -> np.ndarray:
        self.calls.append(len(features))
        return self._scorer.score(features)


@pytest.fixture
def scorer(tmp_path: Path) -> CountingScorer:
    metadata = make_metadata(NAMES, MEANS.tolist(), threshold=THRESHOLD, model_version="v7")
    path = save(logistic_model(WEIGHTS.tolist(), BIAS, metadata), tmp_path / "m.onnx")
    return CountingScorer(OnnxScorer.load(path))


# Row 0: large amount at night on a risky terminal -> fraud; row 1: ordinary -> legit.
ROWS = np.array([[180.0, 1.0, 0.6, 1.0], [40.0, 0.0, 0.0, 4.0]], dtype=np.float32)


def test_score_exactly_at_threshold_is_fraud() -> None:
    threshold = np.float32(0.35)
    below = np.nextafter(threshold, np.float32(0))
    labels = label_scores(np.array([below, threshold, 1.0], dtype=np.float32), float(threshold))
    assert labels.tolist() == [0, 1, 1]
    assert labels.dtype == np.int8
    assert label_scores(np.array([0.0, 0.2]), 0.0).tolist() == [1, 1]


def test_scores_are_clipped_within_tolerance() -> None:
    scores = validate_scores(np.array([-5e-7, 0.3, 1.0 + 5e-7]))
    assert scores.tolist() == [0.0, pytest.approx(0.3), 1.0]
    assert validate_scores(np.array([], dtype=np.float32)).shape == (0,)


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        ([0.2, np.nan, np.nan], "2 NaN score"),
        ([0.2, 1.01], "outside \\[0, 1\\]"),
        ([-0.1, 0.5], "outside \\[0, 1\\]"),
        ([np.inf], "outside \\[0, 1\\]"),
    ],
)
def test_invalid_scores_raise(scores: list[float], message: str) -> None:
    with pytest.raises(ModelScoringError, match=message):
        validate_scores(np.array(scores))


def test_occluded_batch_replaces_one_feature_per_row() -> None:
    batch = occluded_batch(ROWS, MEANS.astype(np.float32))
    assert batch.shape == (8, 4)
    for n in range(2):
        for i in range(4):
            expected = ROWS[n].copy()
            expected[i] = MEANS[i]
            np.testing.assert_array_equal(batch[n * 4 + i], expected)


def test_reason_codes_follow_weight_times_distance_from_mean(scorer: CountingScorer) -> None:
    (fraud, legit) = decide(scorer, [11, 12], ROWS, reason_codes=3, explain="all")
    z = ROWS.astype(np.float64) @ WEIGHTS + BIAS
    pushes = WEIGHTS * (ROWS[0] - MEANS)  # [2.6, 1.2, 2.2, 0.6]: all positive
    contributions = _sigmoid(z[0]) - _sigmoid(z[0] - pushes)
    assert [r.feature for r in fraud.reason_codes] == [NAMES[i] for i in (0, 2, 1)]
    np.testing.assert_allclose(
        [r.contribution for r in fraud.reason_codes], contributions[[0, 2, 1]], atol=1e-6
    )
    assert fraud.label == 1 and fraud.score == pytest.approx(_sigmoid(z[0]), abs=1e-6)
    # Row 1 pushes: amount -0.2, night -0.3, risk -0.2, nb_tx -0.3: nothing pushed it up.
    assert legit.label == 0 and legit.reason_codes == ()
    assert scorer.calls == [2 * (4 + 1)]  # one model call: originals and occlusions together


def test_flagged_mode_explains_only_frauds_with_one_extra_call(scorer: CountingScorer) -> None:
    flagged = decide(scorer, [11, 12], ROWS, reason_codes=2, explain="flagged")
    assert scorer.calls == [2, 4]  # score both rows, then occlude the one fraud
    full = decide(scorer, [11, 12], ROWS, reason_codes=2, explain="all")
    assert flagged == full  # same scores, labels and (for the fraud) the same reasons
    assert [r.feature for r in flagged[0].reason_codes] == [
        "tx_amount",
        "terminal_id_risk_7day_window",
    ]
    assert all(isinstance(r, ReasonCode) and r.contribution > 0 for r in flagged[0].reason_codes)


def test_decision_names_model_threshold_and_ids(scorer: CountingScorer) -> None:
    decisions = decide(scorer, ["a", "b"], ROWS, reason_codes=0)
    assert [d.transaction_id for d in decisions] == ["a", "b"]
    assert {(d.model_version, d.threshold) for d in decisions} == {("v7", THRESHOLD)}
    assert all(d.reason_codes == () for d in decisions)
    assert scorer.calls == [2]


def test_shape_mismatch_is_rejected(scorer: CountingScorer) -> None:
    with pytest.raises(InvalidFeaturesError, match=r"\[3, 4\].*got \[2, 4\]"):
        decide(scorer, [1, 2, 3], ROWS)
