"""The simulated investigator and ``vigil evaluate --feedback`` on a small simulated world."""

from __future__ import annotations

import json
from pathlib import Path

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
from vigil.feedback.evaluation import evaluate_with_feedback, replay_with_reviews
from vigil.feedback.investigator import ReviewPolicy, ReviewState, review, review_rounds
from vigil.feedback.report import cached_feature_table
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


def test_replayed_verdict_features_equal_the_offline_ones_from_the_final_log(
    world: tuple[Settings, pd.DataFrame],
) -> None:
    """No leak: features computed round by round equal those recomputed from the whole log."""
    settings, frame = world
    verdicts = settings.model_copy(
        update={"features": settings.features.model_copy(update={"verdicts": True})}
    )
    split = handbook_split(frame, settings.train)
    empty = with_verdict_features(verdicts.features, frame, ReviewState().log)

    def dataset(rows: pd.DataFrame) -> Dataset:
        return Dataset(feature_matrix(rows, verdicts), rows["tx_fraud"].to_numpy(np.int8))

    train, validation = empty.loc[split.train.index], empty.loc[split.validation.index]
    model, _ = fit_model(verdicts, dataset(train), dataset(validation), Path("unused"))
    state = ReviewState()
    start, end = pd.Timestamp(split.periods.delay_start), pd.Timestamp(split.periods.test_end)
    replayed = replay_with_reviews(model, verdicts, frame, state, ReviewPolicy(15, 6), start, end)
    names = fd.verdict_feature_names(verdicts.features)
    again = with_verdict_features(verdicts.features, replayed.rows, state.log)
    np.testing.assert_array_equal(replayed.rows[names].to_numpy(), again[names].to_numpy())
    assert replayed.rows[names[0]].max() > 0  # verdicts took part
    assert (state.log["reviewed_at"] > state.log["tx_datetime"]).all()
    per_round = state.log.groupby("reviewed_at")["customer_id"].nunique()
    assert per_round.max() <= 4  # 15 cards a day in 6-hour rounds
    np.testing.assert_allclose(
        replayed.scores.to_numpy(),
        predict_scores(model, feature_matrix(again, verdicts)),
        atol=1e-6,  # float32 scores of other batch sizes
    )


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
    plain = evaluate_with_feedback(settings, frame, ReviewPolicy(20), feedback=False)
    assert plain.figures == {"without_feedback": result.figures["without_feedback"]}


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
    assert set(payload["summary"]["logistic"]) >= {"without_feedback", "with_feedback"}
