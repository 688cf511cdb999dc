"""Metrics against hand-computed values, scikit-learn and the handbook's card precision@k."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from vigil import fraud_metrics as metrics


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("tied", [False, True])
def test_auc_and_ap_match_sklearn(seed: int, tied: bool) -> None:
    rng = np.random.default_rng(seed)
    labels = (rng.random(500) < 0.1).astype(int)
    labels[:2] = [0, 1]
    scores = rng.random(500) + 0.3 * labels
    if tied:  # heavy ties exercise the distinct-threshold logic
        scores = np.round(scores, 1)
    expected_auc = roc_auc_score(labels, scores)
    assert metrics.roc_auc(labels, scores) == pytest.approx(expected_auc, abs=1e-12)
    assert metrics.average_precision(labels, scores) == pytest.approx(
        average_precision_score(labels, scores), abs=1e-12
    )


def test_auc_and_ap_hand_computed() -> None:
    labels = [0, 0, 1, 1]
    scores = [0.1, 0.4, 0.35, 0.8]
    # Positive/negative pairs ranked correctly: (0.35>0.1), (0.8>0.1), (0.8>0.4) -> 3 of 4.
    assert metrics.roc_auc(labels, scores) == pytest.approx(0.75)
    # Ranked: 0.8(+) P=1 R=.5; 0.4(-); 0.35(+) P=2/3 R=1 -> AP = .5*1 + .5*2/3.
    assert metrics.average_precision(labels, scores) == pytest.approx(0.5 + 1 / 3)


def test_one_class_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least one fraud and one genuine"):
        metrics.roc_auc([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="differ in length"):
        metrics.average_precision([0, 1], [0.1])
    with pytest.raises(ValueError, match="NaN"):
        metrics.roc_auc([0, 1], [0.1, float("nan")])


def test_card_precision_hand_computed_removes_cards_detected_earlier() -> None:
    days = [0, 0, 0, 0, 1, 1, 1, 1]
    cards = [1, 1, 2, 3, 1, 2, 3, 4]
    labels = [0, 1, 0, 0, 1, 0, 1, 0]
    scores = [0.9, 0.2, 0.8, 0.1, 0.95, 0.5, 0.4, 0.3]
    # Day 0: card1 (max score .9, max label 1), card2 (.8, 0), card3 (.1, 0); top 2 -> 1/2.
    # Day 1: card1 was detected on day 0 and is removed; card2 (.5, 0), card3 (.4, 1),
    # card4 (.3, 0); top 2 -> 1/2.
    per_day = metrics.card_precision_at_k_per_day(days, cards, labels, scores, k=2)
    assert per_day == [0.5, 0.5]
    # Top 1: day 0 card1 (1/1) detected; day 1 card2 (0/1).
    assert metrics.card_precision_at_k(days, cards, labels, scores, k=1) == pytest.approx(0.5)


def test_investigated_cards_per_day_name_the_cards_card_precision_counts() -> None:
    days = [0, 0, 0, 0, 1, 1, 1, 1]
    cards = [1, 1, 2, 3, 1, 2, 3, 4]
    labels = [0, 1, 0, 0, 1, 0, 1, 0]
    scores = [0.9, 0.2, 0.8, 0.1, 0.95, 0.5, 0.4, 0.3]
    first, second = metrics.investigated_cards_per_day(days, cards, labels, scores, k=2)
    # day 0: cards 1 and 2 investigated, card 1 compromised; day 1: card 1 (found on day 0)
    # is gone, cards 2 and 3 investigated, card 3 compromised
    assert (first.investigated.tolist(), first.compromised.tolist()) == ([1, 2], [1])
    assert (second.investigated.tolist(), second.compromised.tolist()) == ([2, 3], [3])
    assert (first.found(), second.found()) == (1, 1)
    with pytest.raises(ValueError, match="positive"):
        metrics.investigated_cards_per_day(days, cards, labels, scores, k=0)


def test_card_precision_divides_by_k_even_with_fewer_cards() -> None:
    assert metrics.card_precision_at_k([0, 0], [7, 8], [1, 0], [0.5, 0.1], k=100) == 0.01


def test_threshold_metrics_hand_computed() -> None:
    labels = [1, 1, 0, 0, 0]
    scores = [0.9, 0.3, 0.5, 0.2, 0.5]
    at = metrics.threshold_metrics(labels, scores, 0.5, cost_missed_fraud=100, cost_false_alarm=5)
    # Flagged (>= .5): 0.9(+), 0.5(-), 0.5(-) -> TP 1, FP 2, FN 1.
    assert (at.true_positives, at.false_positives, at.false_negatives) == (1, 2, 1)
    assert at.precision == pytest.approx(1 / 3)
    assert at.recall == pytest.approx(0.5)
    assert at.expected_cost == 110.0
    assert at.expected_cost_per_transaction == pytest.approx(22.0)
    assert metrics.expected_cost(labels, scores, 0.95, 100, 5) == 200.0


def test_choose_threshold_minimises_cost() -> None:
    labels = [1, 1, 0, 0, 0]
    scores = [0.9, 0.3, 0.5, 0.2, 0.5]
    # Costs by threshold: .9 -> 100; .5 -> 110; .3 -> 10; .2 -> 15; flag nothing -> 200.
    assert metrics.choose_threshold(labels, scores, 100, 5) == pytest.approx(0.3)
    # False alarms dearer than misses: flag only the top one (cost 1 vs 2 for nothing) ...
    assert metrics.choose_threshold(labels, scores, 1, 100) == pytest.approx(0.9)
    # ... or nothing at all when the top score is genuine.
    assert metrics.choose_threshold([0, 1], [0.9, 0.1], 1, 100) == 1.0
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.2).astype(int)
    s = np.clip(rng.random(300) * 0.7 + 0.3 * y, 0, 1)
    chosen = metrics.choose_threshold(y, s, 100, 5)
    brute = min(np.r_[s, 1.0], key=lambda t: (metrics.expected_cost(y, s, t, 100, 5), -t))
    assert metrics.expected_cost(y, s, chosen, 100, 5) == metrics.expected_cost(y, s, brute, 100, 5)


def test_evaluate_scores_has_headline_keys() -> None:
    scores = [0.9, 0.1, 0.2]
    result = metrics.evaluate_scores([0, 0, 1], [1, 2, 1], [1, 0, 0], scores, 0.5, 100, 5, 1)
    assert result["auc_roc"] == 1.0
    assert result["card_precision_at_k"] == 0.5
    assert result["recall"] == 1.0 and result["expected_cost"] == 0.0
