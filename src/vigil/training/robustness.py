"""Robustness of the shipped default: other simulated worlds, other test weeks, two references.

For each world (the handbook's simulator under a seed the default was not tuned on) and each
test week (the handbook protocol laid out from a training start), the shipped default
(``fit_model`` with the configured ``model`` and ``train`` sections) and the handbook's two
chapter-3 references — a random forest (scikit-learn defaults: 100 fully grown trees,
unweighted, as the handbook's ``RandomForestClassifier(random_state=0)``) and a logistic
regression (standard-scaled, C = 1, unweighted, as its ``LogisticRegression``) — are fitted on
the same rows with the same features, and scored on the same test set. The references are
evaluation-only: they never reach an exported model, and serving never imports them.

Two protocols say which rows the references are fitted on (the default is always fitted as
shipped: its history days plus the training days, the last ``validation_days`` held out):

- ``strict``: exactly the default's fitting rows (history + training days, validation excluded);
- ``handbook``: the handbook's chapter-3 protocol — the 7 training days only (validation day
  included: the handbook holds none out), no history days; same features, same test set;
- ``handbook-15``: as ``handbook``, and with the handbook's 15 features only (chapter 3 as
  published: no extended or extra feature groups) for the references.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from vigil.config import Settings
from vigil.data import schema
from vigil.models.kinds import predict_scores
from vigil.training.data import feature_matrix, history_start
from vigil.training.run import fit_model
from vigil.training.splits import (
    Periods,
    Split,
    figures_on_test_set,
    handbook_split,
    transaction_days,
)
from vigil.training.trainer import Dataset

logger = logging.getLogger(__name__)

DEFAULT = "default"
REFERENCES = ("random_forest", "logistic_regression")
MODELS = (DEFAULT, *REFERENCES)
# Which rows the references are fitted on (module docstring).
STRICT = "strict"
HANDBOOK = "handbook"
HANDBOOK_15 = "handbook-15"
PROTOCOLS = (STRICT, HANDBOOK, HANDBOOK_15)
# The criterion of issue 17 (item 7): the default leads every reference on AP by this much.
MIN_AP_LEAD = 0.03

Scorer = Callable[[np.ndarray], np.ndarray]


class Fitter(Protocol):
    """Fits one model on the training rows (validation rows for early stopping only)."""

    def __call__(self, settings: Settings, train: Dataset, validation: Dataset) -> Scorer: ...


def fit_default(settings: Settings, train: Dataset, validation: Dataset) -> Scorer:
    """The shipped default: ``model.kind`` with the configured settings, as ``vigil train``."""
    with tempfile.TemporaryDirectory(prefix="vigil-robustness-") as tmp:
        model, _ = fit_model(settings, train, validation, Path(tmp))
    return lambda features: predict_scores(model, features)


def fit_random_forest(settings: Settings, train: Dataset, validation: Dataset) -> Scorer:
    """The handbook's random forest (scikit-learn defaults, ``random_state`` = train.seed)."""
    del validation  # the handbook fits on the training rows alone
    forest = RandomForestClassifier(n_estimators=100, random_state=settings.train.seed, n_jobs=1)
    forest.fit(train.features, train.labels)
    return lambda features: np.asarray(forest.predict_proba(features)[:, 1], dtype=np.float64)


def fit_logistic_regression(settings: Settings, train: Dataset, validation: Dataset) -> Scorer:
    """The handbook's logistic regression: scaled on the training rows, C = 1, unweighted."""
    del validation
    pipeline = Pipeline(
        [
            ("scaler", StandardScaler()),
            ("classifier", LogisticRegression(max_iter=2000, random_state=settings.train.seed)),
        ]
    )
    pipeline.fit(train.features, train.labels)
    return lambda features: np.asarray(pipeline.predict_proba(features)[:, 1], dtype=np.float64)


FITTERS: Mapping[str, Fitter] = {
    DEFAULT: fit_default,
    "random_forest": fit_random_forest,
    "logistic_regression": fit_logistic_regression,
}


@dataclass(frozen=True)
class WeekResult:
    """One world and test week: AP and CP@k of every model on the same test set."""

    world_seed: int
    train_start: date
    test_start: date
    train_rows: int
    test_rows: int
    test_frauds: int
    figures: dict[str, dict[str, float]]  # model -> {"average_precision", "card_precision_at_k"}
    seconds: dict[str, float]
    protocol: str = STRICT
    reference_train_rows: int | None = None  # rows the references were fitted on

    def lead(self, metric: str) -> float:
        """The default's figure minus the best reference's (negative: it trails)."""
        best = max(self.figures[name][metric] for name in REFERENCES)
        return self.figures[DEFAULT][metric] - best

    @property
    def meets_criterion(self) -> bool:
        """Leads every reference on AP by :data:`MIN_AP_LEAD` and trails none on CP@k."""
        return (
            self.lead("average_precision") >= MIN_AP_LEAD and self.lead("card_precision_at_k") >= 0
        )

    @property
    def has_references(self) -> bool:
        """Whether the references' figures are here (not with only the default fitted)."""
        return all(name in self.figures for name in REFERENCES)

    def as_dict(self) -> dict[str, Any]:
        """Plain values, for JSON; the protocol, the references' rows and the leads only when
        the references' figures are here."""
        plain: dict[str, Any] = {
            "world_seed": self.world_seed,
            "train_start": self.train_start.isoformat(),
            "test_start": self.test_start.isoformat(),
            "train_rows": self.train_rows,
            "test_rows": self.test_rows,
            "test_frauds": self.test_frauds,
            "figures": {
                name: {key: round(value, 4) for key, value in figures.items()}
                for name, figures in self.figures.items()
            },
        }
        if self.has_references:
            plain |= {
                "protocol": self.protocol,
                "reference_train_rows": self.reference_train_rows,
                "ap_lead": round(self.lead("average_precision"), 4),
                "cp_lead": round(self.lead("card_precision_at_k"), 4),
                "meets_criterion": self.meets_criterion,
            }
        plain["seconds"] = {name: round(value, 1) for name, value in self.seconds.items()}
        return plain


def at_train_start(settings: Settings, train_start: date) -> Settings:
    """The same settings with the protocol laid out from ``train_start``."""
    train = settings.train.model_copy(update={"train_start": train_start})
    return settings.model_copy(update={"train": train})


def scored_week(settings: Settings, train_start: date) -> tuple[date, date]:
    """First and last day of the test week the protocol gives for ``train_start``."""
    periods = Periods.from_config(at_train_start(settings, train_start).train)
    return periods.test_start, periods.test_end - timedelta(days=1)


def needed_window(
    settings: Settings, train_starts: list[date]
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Transactions ``[start, end)`` whose features every listed week needs."""
    starts = [at_train_start(settings, day) for day in train_starts]
    first = min(history_start(week) for week in starts)
    last = max(pd.Timestamp(Periods.from_config(week.train).test_end) for week in starts)
    return first, last


def _dataset(frame: pd.DataFrame, settings: Settings) -> Dataset:
    return Dataset(feature_matrix(frame, settings), frame[schema.TX_FRAUD].to_numpy(np.int8))


def reference_rows(split: Split, protocol: str) -> pd.DataFrame:
    """The rows the references are fitted on under ``protocol`` (module docstring)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    if protocol == STRICT:
        return split.train
    days = transaction_days(split.train)
    training_days = split.train[days >= split.periods.train_start]
    return pd.concat([training_days, split.validation])


def reference_settings(settings: Settings, protocol: str) -> Settings:
    """The settings the references' feature matrices are built with under ``protocol``."""
    if protocol != HANDBOOK_15:
        return settings
    features = settings.features.model_copy(update={"extended": False, "extra": []})
    return settings.model_copy(update={"features": features})


def evaluate_week(
    settings: Settings,
    features: pd.DataFrame,
    world_seed: int,
    train_start: date,
    fitters: Mapping[str, Fitter] = FITTERS,
    on_model: Callable[[str], None] | None = None,
    protocol: str = STRICT,
) -> WeekResult:
    """Fit every model on one split of ``features`` and score its test week.

    The default is fitted on the split's fitting rows (validation rows for early stopping);
    the references on :func:`reference_rows` of ``protocol``.
    """
    week = at_train_start(settings, train_start)
    split = handbook_split(features, week.train)
    train, validation = _dataset(split.train, week), _dataset(split.validation, week)
    test = feature_matrix(split.test, week)
    references = reference_rows(split, protocol)
    reference_week = reference_settings(week, protocol)
    reference_train, reference_validation, reference_test = train, validation, test
    if protocol != STRICT:  # every matrix a reference sees has its features (15 or 24)
        reference_train = _dataset(references, reference_week)
        reference_validation = _dataset(split.validation, reference_week)
        reference_test = feature_matrix(split.test, reference_week)
    figures: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    for name, fit in fitters.items():
        started = time.perf_counter()
        if name == DEFAULT:
            scores = fit(week, train, validation)(test)
        else:
            scores = fit(reference_week, reference_train, reference_validation)(reference_test)
        figures[name] = figures_on_test_set(split, scores, week.train.top_k_cards)
        seconds[name] = time.perf_counter() - started
        logger.info("world %d, week %s, %s: %s", world_seed, train_start, name, figures[name])
        if on_model is not None:
            on_model(name)
    return WeekResult(
        world_seed=world_seed,
        train_start=train_start,
        test_start=split.periods.test_start,
        train_rows=len(split.train),
        test_rows=len(split.test),
        test_frauds=int(split.test[schema.TX_FRAUD].sum()),
        figures=figures,
        seconds=seconds,
        protocol=protocol,
        reference_train_rows=len(references),
    )


def format_table(results: list[WeekResult]) -> str:
    """A Markdown table: per world and week, AP and CP@k of each model and the default's lead."""
    header = (
        "| world seed | test week | test rows (frauds) | AP default | AP RF | AP LR | "
        "CP@100 default | CP@100 RF | CP@100 LR | AP lead | CP@100 lead | meets |"
    )
    lines = [header, "|" + "---|" * 12]
    for r in results:
        ap = [r.figures[m]["average_precision"] for m in MODELS]
        cp = [r.figures[m]["card_precision_at_k"] for m in MODELS]
        lines.append(
            f"| {r.world_seed} | {r.test_start} | {r.test_rows:,} ({r.test_frauds}) | "
            + " | ".join(f"{v:.3f}" for v in (*ap, *cp))
            + f" | {r.lead('average_precision'):+.3f} | {r.lead('card_precision_at_k'):+.3f} | "
            + ("yes" if r.meets_criterion else "**no**")
            + " |"
        )
    return "\n".join(lines)
