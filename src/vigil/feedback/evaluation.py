"""``vigil evaluate --feedback``: the handbook protocol replayed with a simulated investigator.

For one model configuration and seed, on a feature table of the protocol's periods:

1. **Without feedback** (the point-in-time protocol, unchanged): a model on the stream
   features, fitted on the training days, scores the test week.
2. **With feedback**: that model's scores over every day before the delay period stand for
   a past deployment; the investigator reviews them (the verdict log of the past). A second
   model, on the stream plus the verdict features, is fitted on the same rows. From the first
   day after training (the delay week included) the week is replayed in review rounds: the
   round's transactions get their verdict features from the verdicts reviewed before them,
   the model scores them, the investigator reviews the top cards and their verdicts count
   from the round's end. The test week's scores give AP and CP@k on the same test set.
3. **With feedback and retraining**: at the end of the delay week the model is refitted
   from scratch on its training rows plus the delay week's reviewed transactions (their
   verdicts are their labels; no other delay-week label is known yet), then replays the test
   week. The rows are chosen and labelled by
   :func:`vigil.training.verdict_labels.with_verdict_labels`, as the retrain job's with
   ``retrain.verdict_labels`` (whose default ``retrain.strategy``, ``full``, is also a refit
   from scratch); that module explains the sampling bias of the reviewed cards.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vigil.config import Settings
from vigil.data import schema
from vigil.features.verdict_sql import with_verdict_features
from vigil.feedback.investigator import (
    ReviewPolicy,
    ReviewState,
    review_round,
    review_rounds,
    review_scored_period,
)
from vigil.models.kinds import FraudModel, predict_scores
from vigil.training.data import feature_matrix
from vigil.training.run import fit_model
from vigil.training.splits import Split, figures_on_test_set, handbook_split
from vigil.training.trainer import Dataset
from vigil.training.verdict_labels import with_verdict_labels

logger = logging.getLogger(__name__)

VARIANTS = ("without_feedback", "with_feedback", "with_feedback_retrained")


@dataclass(frozen=True)
class FeedbackResult:
    """One configuration and seed: AP and CP@k of each variant, and the review counts."""

    experiment: str
    model_kind: str
    seed: int
    figures: dict[str, dict[str, float]]
    reviews: dict[str, int]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        """Plain values, for JSON."""
        return {
            "experiment": self.experiment,
            "model_kind": self.model_kind,
            "seed": self.seed,
            **self.figures,
            "reviews": self.reviews,
            "seconds": round(self.seconds, 1),
        }


def _with_verdicts(settings: Settings, on: bool) -> Settings:
    features = settings.features.model_copy(update={"verdicts": on})
    return settings.model_copy(update={"features": features})


def _fit(settings: Settings, train: pd.DataFrame, validation: pd.DataFrame) -> FraudModel:
    def dataset(frame: pd.DataFrame) -> Dataset:
        labels = frame[schema.TX_FRAUD].to_numpy(dtype=np.int8)
        return Dataset(feature_matrix(frame, settings), labels)

    with tempfile.TemporaryDirectory(prefix="vigil-feedback-") as tmp:
        model, _ = fit_model(settings, dataset(train), dataset(validation), Path(tmp))
    return model


def _score(model: FraudModel, frame: pd.DataFrame, settings: Settings) -> np.ndarray:
    return predict_scores(model, feature_matrix(frame, settings))


def _test_figures(split: Split, scores: pd.Series, k: int) -> dict[str, float]:
    return figures_on_test_set(split, scores.loc[split.test.index].to_numpy(), k)


def _queue_figures(
    state: ReviewState, start: pd.Timestamp, end: pd.Timestamp, k: int
) -> dict[str, float]:
    """The investigator's queue precision over ``[start, end)``: per day, the compromised
    cards among those reviewed, over the budget ``k`` (CP@k of the cards actually reviewed)."""
    days = pd.date_range(start, end, freq="D", inclusive="left")
    return {
        "queue_precision_at_k": float(np.mean([state.queue.get(d, (0, 0))[1] / k for d in days]))
    }


Scorer = Callable[[pd.DataFrame, pd.DataFrame], np.ndarray]
"""A round's scores: its rows (with their verdict features) and the verdict log so far."""


def model_scorer(model: FraudModel, settings: Settings) -> Scorer:
    """A fitted model's scores (the verdict log reaches it through the verdict features)."""
    return lambda rows, _log: _score(model, rows, settings)


@dataclass
class Replay:
    """A replay's scores and the rows it scored, with their verdict features as scored."""

    scores: pd.Series
    rows: pd.DataFrame


def replay_with_reviews(
    scorer: Scorer,
    settings: Settings,
    frame: pd.DataFrame,
    state: ReviewState,
    policy: ReviewPolicy,
    start: pd.Timestamp,
    end: pd.Timestamp,
    reviewable: pd.Index | None = None,
) -> Replay:
    """Score ``[start, end)`` round by round with verdict features; review after each round.

    ``reviewable``: the rows the investigator may pick from (default: all); in the test week
    the protocol's test set, so that the reviewed cards are the ones card precision@k counts.
    """
    times = frame[schema.TX_DATETIME]
    scored: list[pd.Series] = []
    rows: list[pd.DataFrame] = []
    for lo, hi in review_rounds(start, end, policy.every_hours):
        part = frame[(times >= lo) & (times < hi)]
        if part.empty:
            continue
        part = with_verdict_features(settings.features, part, state.log)
        scores = scorer(part, state.log)
        pool = np.ones(len(part), bool) if reviewable is None else part.index.isin(reviewable)
        delay = settings.features.label_delay_days
        review_round(frame, part[pool], scores[pool], state, policy, (lo, hi), delay)
        scored.append(pd.Series(scores, index=part.index))
        rows.append(part)
    return Replay(pd.concat(scored), pd.concat(rows))


@dataclass(frozen=True)
class Deployment:
    """The protocol up to the delay week: the split, the point-in-time model's scores over
    the whole table, the verdict log its past deployment left, and the verdict-feature model
    fitted on the training rows with that log (``settings``: with the verdict features)."""

    settings: Settings
    split: Split
    base_scores: pd.Series
    past: ReviewState
    train: pd.DataFrame
    validation: pd.DataFrame
    model: FraudModel


def point_in_time_scores(settings: Settings, frame: pd.DataFrame, split: Split) -> pd.Series:
    """The model without verdict features, fitted on the split, scoring every row."""
    plain = _with_verdicts(settings, False)
    base = _fit(plain, split.train, split.validation)
    return pd.Series(_score(base, frame, plain), index=frame.index)


def deploy(
    settings: Settings,
    frame: pd.DataFrame,
    split: Split,
    base_scores: pd.Series,
    policy: ReviewPolicy,
) -> Deployment:
    """Review the days before the delay period on the point-in-time scores, then fit the
    verdict-feature model on the same rows with the verdict log that left."""
    verdicts = _with_verdicts(settings, True)
    delay_start = pd.Timestamp(split.periods.delay_start)
    past = frame[frame[schema.TX_DATETIME] < delay_start]
    state = review_scored_period(
        past,
        base_scores.loc[past.index].to_numpy(),
        policy,
        settings.features.label_delay_days,
        delay_start,
    )
    history = with_verdict_features(verdicts.features, past, state.log)
    train, validation = history.loc[split.train.index], history.loc[split.validation.index]
    model = _fit(verdicts, train, validation)
    return Deployment(verdicts, split, base_scores, state, train, validation, model)


@dataclass(frozen=True)
class WeekReplays:
    """The delay and test weeks replayed from a deployment's past (``after_delay``: the
    review state between them; ``state``: at the test week's end)."""

    delay_week: Replay
    test_week: Replay
    after_delay: ReviewState
    state: ReviewState


def replay_weeks(
    deployment: Deployment, frame: pd.DataFrame, policy: ReviewPolicy, scorer: Scorer
) -> WeekReplays:
    """The delay week, then the test week (reviews on the test set), scored by ``scorer``
    from a copy of the deployment's past verdict log."""
    periods, settings = deployment.split.periods, deployment.settings
    delay_start = pd.Timestamp(periods.delay_start)
    test_start, test_end = pd.Timestamp(periods.test_start), pd.Timestamp(periods.test_end)
    state = deployment.past.copy()
    delay_week = replay_with_reviews(
        scorer, settings, frame, state, policy, delay_start, test_start
    )
    after_delay = state.copy()
    test_week = replay_with_reviews(
        scorer, settings, frame, state, policy, test_start, test_end, deployment.split.test.index
    )
    return WeekReplays(delay_week, test_week, after_delay, state)


def evaluate_with_feedback(
    settings: Settings,
    frame: pd.DataFrame,
    policy: ReviewPolicy,
    feedback: bool = True,
    retrain: bool = True,
) -> FeedbackResult:
    """The variants of the module docstring for one configuration and seed (only the first
    without ``feedback``, the first two without ``retrain``).

    The retrained variant refits from scratch, as the retrain job's ``retrain.strategy:
    full`` (the default); a warm start of the champion (``warm_start``, ``auto``) is not
    evaluated here, so those settings are refused rather than reported as a full refit.
    """
    if feedback and retrain and settings.retrain.strategy != "full":
        raise ValueError(
            f"vigil evaluate --feedback retrains from scratch (retrain.strategy full), not "
            f"{settings.retrain.strategy}: set retrain.strategy=full or pass --no-retrain"
        )
    started = time.perf_counter()
    split = handbook_split(frame, settings.train)
    periods, k = split.periods, settings.train.top_k_cards
    test_start, test_end = pd.Timestamp(periods.test_start), pd.Timestamp(periods.test_end)

    base_scores = point_in_time_scores(settings, frame, split)
    figures = {"without_feedback": _test_figures(split, base_scores, k)}
    if not feedback:
        return _result(settings, figures, {}, started)

    deployment = deploy(settings, frame, split, base_scores, policy)
    verdicts, past_reviews = deployment.settings, len(deployment.past.log)
    weeks = replay_weeks(deployment, frame, policy, model_scorer(deployment.model, verdicts))
    state = weeks.state
    scores = pd.concat([weeks.delay_week.scores, weeks.test_week.scores])
    figures["with_feedback"] = _test_figures(split, scores, k) | _queue_figures(
        state, test_start, test_end, policy.cards_per_day
    )
    reviews = {
        "before_delay": past_reviews,
        "delay_and_test_weeks": len(state.log) - past_reviews,
        "delay_and_test_week_frauds": int(state.log[schema.TX_FRAUD].iloc[past_reviews:].sum()),
    }

    if retrain:
        after_delay = weeks.after_delay
        training = with_verdict_labels(
            deployment.train, weeks.delay_week.rows, after_delay.log, periods
        )
        refit = _fit(verdicts, training, deployment.validation)
        retest = replay_with_reviews(
            model_scorer(refit, verdicts),
            verdicts,
            frame,
            after_delay,
            policy,
            test_start,
            test_end,
            split.test.index,
        )
        figures["with_feedback_retrained"] = _test_figures(
            split, retest.scores, k
        ) | _queue_figures(after_delay, test_start, test_end, policy.cards_per_day)
        reviews["retrain_rows_added"] = len(training) - len(deployment.train)
    return _result(settings, figures, reviews, started)


def _result(
    settings: Settings,
    figures: dict[str, dict[str, float]],
    reviews: dict[str, int],
    started: float,
) -> FeedbackResult:
    name, seed = settings.train.experiment_name, settings.train.seed
    logger.info("feedback evaluation %s seed %d: %s", name, seed, figures)
    seconds = time.perf_counter() - started
    return FeedbackResult(name, settings.model.kind, seed, figures, reviews, seconds)
