"""The simulated investigator and ``vigil evaluate --feedback`` on a small simulated world."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from vigil.cli import app
from vigil.config import Settings
from vigil.data.io import write_partitioned
from vigil.data.simulate import simulate_transactions
from vigil.features import definitions as fd
from vigil.features.verdict_sql import with_verdict_features
from vigil.feedback.evaluation import (
    Scorer,
    evaluate_with_feedback,
    model_scorer,
    replay_with_reviews,
)
from vigil.feedback.investigator import (
    ReviewPolicy,
    ReviewState,
    review,
    review_round,
    review_rounds,
)
from vigil.feedback.report import cached_feature_table, format_table
from vigil.models.kinds import predict_scores
from vigil.training.data import feature_matrix
from vigil.training.run import fit_model
from vigil.training.splits import handbook_split
from vigil.training.trainer import Dataset

T0 = pd.Timestamp("2018-05-01")


def round_rows() -> tuple[pd.DataFrame, np.ndarray]:
    rows = pd.DataFrame(
        {
            "transaction_id": [1, 2, 3, 4, 5, 6],
            "customer_id": [10, 10, 11, 12, 13, 13],
            "terminal_id": [5, 6, 5, 7, 8, 8],
            "tx_datetime": T0 + pd.to_timedelta([1, 2, 3, 4, 5, 6], unit="h"),
            "tx_amount": [1.0] * 6,
            "tx_fraud": [1, 0, 1, 0, 1, 1],
            "tx_fraud_scenario": [2, 0, 3, 0, 2, 1],
        }
    )
    return rows, np.array([0.9, 0.1, 0.8, 0.95, 0.2, 0.3])


def test_the_investigator_reviews_the_top_open_cards_whole() -> None:
    rows, scores = round_rows()
    policy = ReviewPolicy(cards_per_day=2)
    verdicts = review(rows, scores, {12}, policy, T0 + pd.Timedelta(days=1))
    # card 12 (0.95) is blocked; cards 10 (0.9) and 11 (0.8) are reviewed, all their rows
    assert verdicts["transaction_id"].tolist() == [1, 2, 3]
    assert verdicts["tx_fraud"].tolist() == [1, 0, 1]
    assert verdicts["terminal_compromised"].tolist() == [1, 0, 0]  # scenario 2 frauds only
    assert (verdicts["reviewed_at"] == T0 + pd.Timedelta(days=1)).all()
    unmarked = review(rows, scores, set(), ReviewPolicy(2, mark_terminals=False), T0)
    assert unmarked["terminal_compromised"].sum() == 0


def test_a_review_looks_back_over_the_cards_transactions_without_a_verdict() -> None:
    rows, scores = round_rows()
    earlier = rows.iloc[[0, 0, 0]].assign(
        transaction_id=[7, 8, 9],
        tx_datetime=T0 - pd.to_timedelta([2, 9, 1], unit="D"),
        tx_fraud=[1, 1, 0],
    )
    history = pd.concat([earlier, rows], ignore_index=True)
    # card 12 (0.95): nothing earlier; card 10 next (a budget of 2): 7 and 9 are inside the
    # look-back, 8 is not; 9 already has a verdict (done)
    two = ReviewPolicy(cards_per_day=2, lookback_days=7)
    verdicts = review(
        rows, scores, set(), two, T0 + pd.Timedelta(days=1), history=history, done={9}
    )
    assert sorted(verdicts["transaction_id"].tolist()) == [1, 2, 4, 7]
    assert (verdicts["reviewed_at"] == T0 + pd.Timedelta(days=1)).all()
    without = review(rows, scores, set(), two, T0 + pd.Timedelta(days=1))
    assert sorted(without["transaction_id"].tolist()) == [1, 2, 4]
    with pytest.raises(ValueError, match="lookback_days"):
        ReviewPolicy(100, lookback_days=-1)


def test_shorter_rounds_review_the_cards_reaching_the_previous_days_cut_off() -> None:
    rows, scores = round_rows()
    day2 = rows.assign(
        transaction_id=rows["transaction_id"] + 100,
        tx_datetime=rows["tx_datetime"] + pd.Timedelta(days=1),
    )
    frame = pd.concat([rows, day2], ignore_index=True)
    all_scores = np.concatenate([scores, scores])
    state, policy = ReviewState(), ReviewPolicy(cards_per_day=2, every_hours=6)
    for lo, hi in review_rounds(T0, T0 + pd.Timedelta(days=2), 6):
        mask = ((frame["tx_datetime"] >= lo) & (frame["tx_datetime"] < hi)).to_numpy()
        review_round(frame, frame[mask], all_scores[mask], state, policy, (lo, hi), 7)
    first = state.log[state.log["tx_datetime"] < T0 + pd.Timedelta(days=1)]
    # day 1 has no cut-off yet: its best two cards (12, 10) at the day's end
    assert set(first["customer_id"]) == {10, 12}
    assert (first["reviewed_at"] == T0 + pd.Timedelta(days=1)).all()
    second = state.log[state.log["tx_datetime"] >= T0 + pd.Timedelta(days=1)]
    # day 2: card 10 is blocked (its fraud was confirmed); the cut-off is day 1's second card
    # (0.9): card 12 (0.95 at 04:00) reaches it and is reviewed at the first round's end; no
    # other card does, so the day's last round spends the budget left on the best one (11)
    reviewed = second.groupby("customer_id")["reviewed_at"].first()
    assert reviewed.to_dict() == {
        12: T0 + pd.Timedelta(days=1, hours=6),
        11: T0 + pd.Timedelta(days=2),
    }
    assert state.queue[T0 + pd.Timedelta(days=1)] == (2, 1)  # 2 cards reviewed, 1 fraud


def test_review_rounds_split_the_budget_over_the_day() -> None:
    rounds = review_rounds(T0, T0 + pd.Timedelta(days=2), 6)
    assert len(rounds) == 8 and rounds[0] == (T0, T0 + pd.Timedelta(hours=6))
    assert ReviewPolicy(100, 6).cards_per_round == 25
    with pytest.raises(ValueError, match="dividing 24"):
        ReviewPolicy(100, 5)


@pytest.fixture
def world(small_settings: Settings) -> tuple[Settings, pd.DataFrame]:
    settings = small_settings.model_copy(
        update={
            "model": small_settings.model.model_copy(update={"kind": "logistic"}),
            "train": small_settings.train.model_copy(update={"history_days": 0}),
        }
    )
    raw = settings.data.raw_dir
    write_partitioned(simulate_transactions(settings.data), raw)
    return settings, cached_feature_table(settings, raw, raw.parent / "cache")


@pytest.fixture
def verdict_world(world: tuple[Settings, pd.DataFrame]) -> tuple[Settings, pd.DataFrame]:
    """The world, with the verdict features on."""
    settings, frame = world
    features = settings.features.model_copy(update={"verdicts": True})
    return settings.model_copy(update={"features": features}), frame


def test_replayed_verdict_features_equal_the_offline_ones_from_the_final_log(
    verdict_world: tuple[Settings, pd.DataFrame],
) -> None:
    """No leak: features computed round by round equal those recomputed from the whole log."""
    verdicts, frame = verdict_world
    split = handbook_split(frame, verdicts.train)
    empty = with_verdict_features(verdicts.features, frame, ReviewState().log)

    def dataset(rows: pd.DataFrame) -> Dataset:
        return Dataset(feature_matrix(rows, verdicts), rows["tx_fraud"].to_numpy(np.int8))

    train, validation = empty.loc[split.train.index], empty.loc[split.validation.index]
    model, _ = fit_model(verdicts, dataset(train), dataset(validation), Path("unused"))
    state = ReviewState()
    start, end = pd.Timestamp(split.periods.delay_start), pd.Timestamp(split.periods.test_end)
    scorer = model_scorer(model, verdicts)
    replayed = replay_with_reviews(scorer, verdicts, frame, state, ReviewPolicy(15, 6), start, end)
    names = fd.verdict_feature_names(verdicts.features)
    again = with_verdict_features(verdicts.features, replayed.rows, state.log)
    np.testing.assert_array_equal(replayed.rows[names].to_numpy(), again[names].to_numpy())
    assert replayed.rows[names[0]].max() > 0  # verdicts took part
    assert (state.log["reviewed_at"] > state.log["tx_datetime"]).all()
    day = (state.log["reviewed_at"] - pd.Timedelta(microseconds=1)).dt.normalize()
    per_day = state.log.groupby(day)["customer_id"].nunique()
    assert per_day.max() <= 15  # 15 cards a day, whatever the rounds
    np.testing.assert_allclose(
        replayed.scores.to_numpy(),
        predict_scores(model, feature_matrix(again, verdicts)),
        atol=1e-6,  # float32 scores of other batch sizes
    )


def test_a_replay_reviews_by_the_scorers_scores_and_shows_it_the_log_so_far(
    verdict_world: tuple[Settings, pd.DataFrame],
) -> None:
    settings, frame = verdict_world
    split = handbook_split(frame, settings.train)
    start, end = pd.Timestamp(split.periods.delay_start), pd.Timestamp(split.periods.test_end)
    seen: list[int] = []

    def by_label(sign: int) -> Scorer:
        def score(rows: pd.DataFrame, log: pd.DataFrame) -> np.ndarray:
            seen.append(len(log))
            return sign * rows["tx_fraud"].to_numpy(float)

        return score

    found = {}
    for sign in (1, -1):
        state = ReviewState()
        replay_with_reviews(by_label(sign), settings, frame, state, ReviewPolicy(15), start, end)
        found[sign] = sum(frauds for _, frauds in state.queue.values())
    # fraud first: the investigator finds compromised cards; fraud last: only those that also
    # paid genuinely that day (a card's score is its highest)
    assert found[1] > 5 * found[-1]
    assert seen[0] == 0 and seen[1] > 0  # each round's scorer sees the verdicts before it


def test_evaluation_reports_every_variant(world: tuple[Settings, pd.DataFrame]) -> None:
    settings, frame = world
    result = evaluate_with_feedback(settings, frame, ReviewPolicy(20))
    assert set(result.figures) == {
        "without_feedback",
        "with_feedback",
        "with_feedback_retrained",
    }
    for figures in result.figures.values():
        assert 0 < figures["average_precision"] <= 1
        assert 0 <= figures["card_precision_at_k"] <= 1
    assert result.reviews["before_delay"] > 0 and result.reviews["retrain_rows_added"] > 0
    # the investigator's own precision: reviewed cards found compromised, per day, over 20
    assert 0 < result.figures["with_feedback"]["queue_precision_at_k"] <= 1
    plain = evaluate_with_feedback(settings, frame, ReviewPolicy(20), feedback=False)
    assert plain.figures == {"without_feedback": result.figures["without_feedback"]}


@pytest.mark.parametrize("strategy", ["warm_start", "auto"])
def test_the_retrained_variant_is_refused_for_a_warm_start_strategy(
    world: tuple[Settings, pd.DataFrame], strategy: str
) -> None:
    """The evaluation refits from scratch (the retrain job's ``full``): it does not report that
    as the retrain of a job configured to warm-start the champion."""
    settings, frame = world
    retrain = settings.retrain.model_copy(update={"strategy": strategy})
    warm = settings.model_copy(update={"retrain": retrain})
    with pytest.raises(ValueError, match=f"not {strategy}"):
        evaluate_with_feedback(warm, frame, ReviewPolicy(20))


def test_evaluate_command_writes_results(
    world: tuple[Settings, pd.DataFrame], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, _ = world
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps(settings.model_dump(mode="json", context={"reveal": True})))
    out = tmp_path / "results.json"
    result = CliRunner().invoke(
        app,
        [
            "evaluate", "logistic", "--feedback", "--no-retrain", "--seeds", "1",
            "--config", str(config), "--data", str(settings.data.raw_dir),
            "--cards-per-day", "20", "--cache-dir", str(tmp_path / "cache"),
            "--results", str(out),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "with feedback" in result.output
    payload = json.loads(out.read_text())
    assert payload["protocol"]["review_policy"]["cards_per_day"] == 20
    # the look-back defaults to the served verdict's (one definition: cases.lookback_days)
    assert payload["protocol"]["review_policy"]["lookback_days"] == settings.cases.lookback_days
    assert set(payload["summary"]["logistic"]) >= {"without_feedback", "with_feedback"}


def test_the_table_shows_a_spread_over_several_seeds_only() -> None:
    """One seed has no spread: its row shows the mean alone, as `vigil experiments` shows one
    run (it showed "± 0.000", a spread that was never measured)."""

    def row(values: list[float]) -> dict[str, Any]:
        figure = {"mean": float(np.mean(values)), "std": float(np.std(values)), "values": values}
        metrics = {"average_precision": figure, "card_precision_at_k": figure}
        seeds = list(range(len(values)))
        return {"seeds": seeds, "model_kind": "logistic", "with_feedback": metrics}

    lines = format_table({"one": row([0.5]), "two": row([0.5, 0.7])}).splitlines()
    assert lines[2] == "| one | 1 | 0.500 | 0.500 |"
    assert lines[3] == "| two | 2 | 0.600 ± 0.100 | 0.600 ± 0.100 |"
