"""The Fraud Detection Handbook's protocol: training, delay and test periods in time.

Training is ``[train_start, train_start + train_days)``; its last ``validation_days`` are held
out (early stopping, threshold, model selection). ``history_days`` more days before
``train_start`` may be added to fitting; they change neither the validation days nor the
test set, which the protocol defines from ``train_start``. The delay period follows (labels not yet
known), then the test period. Cards known to be compromised are dropped from the test set:
every card with a fraud in training and, for test day i, every card with a fraud on day
``train_start + train_days + i - 1`` (cumulative, as the handbook's ``get_train_test_set``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from vigil import fraud_metrics as metrics
from vigil.config import TrainConfig
from vigil.data.schema import CUSTOMER_ID, TX_DATETIME, TX_FRAUD

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Periods:
    """Start (inclusive) and end (exclusive) dates of each period."""

    fit_start: date
    train_start: date
    validation_start: date
    delay_start: date
    test_start: date
    test_end: date

    @classmethod
    def from_config(cls, config: TrainConfig) -> Periods:
        """Lay the periods out from the ``train`` configuration."""
        if not 0 < config.validation_days < config.train_days:
            raise ValueError(
                f"train.validation_days ({config.validation_days}) must be at least 1 and "
                f"smaller than train.train_days ({config.train_days})"
            )
        delay_start = config.train_start + timedelta(days=config.train_days)
        test_start = delay_start + timedelta(days=config.delay_days)
        return cls(
            fit_start=config.train_start - timedelta(days=config.history_days),
            train_start=config.train_start,
            validation_start=delay_start - timedelta(days=config.validation_days),
            delay_start=delay_start,
            test_start=test_start,
            test_end=test_start + timedelta(days=config.test_days),
        )


@dataclass(frozen=True)
class Split:
    """Rows for fitting, validation (last days of training) and test (known cards removed)."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    periods: Periods


def transaction_days(frame: pd.DataFrame) -> pd.Series:
    """Calendar day of each transaction (as ``datetime.date``)."""
    return frame[TX_DATETIME].dt.date


def _between(days: pd.Series, start: date, end: date) -> pd.Series:
    return (days >= start) & (days < end)


def _frauded_cards(frame: pd.DataFrame, mask: pd.Series) -> set[int]:
    return set(frame.loc[mask & (frame[TX_FRAUD] == 1), CUSTOMER_ID].tolist())


def _drop_known_compromised(frame: pd.DataFrame, days: pd.Series, periods: Periods) -> list[int]:
    """Index labels of test rows whose card was not yet known compromised that day."""
    known = _frauded_cards(frame, _between(days, periods.train_start, periods.delay_start))
    kept: list[int] = []
    n_test_days = (periods.test_end - periods.test_start).days
    for i in range(n_test_days):
        known |= _frauded_cards(frame, days == periods.delay_start + timedelta(days=i - 1))
        test_day = periods.test_start + timedelta(days=i)
        day_rows = frame.index[(days == test_day) & ~frame[CUSTOMER_ID].isin(known)]
        kept.extend(day_rows.tolist())
    return kept


def handbook_split(frame: pd.DataFrame, config: TrainConfig) -> Split:
    """Split a feature table by the handbook's protocol; raises if a period is empty."""
    periods = Periods.from_config(config)
    days = transaction_days(frame)
    train = frame[_between(days, periods.fit_start, periods.validation_start)]
    validation = frame[_between(days, periods.validation_start, periods.delay_start)]
    test = frame.loc[_drop_known_compromised(frame, days, periods)]
    for name, part in (("training", train), ("validation", validation), ("test", test)):
        if part.empty:
            raise ValueError(
                f"the {name} period is empty: data covers {days.min()}..{days.max()}, "
                f"protocol needs {periods.fit_start}..{periods.test_end - timedelta(days=1)}"
            )
    logger.info(
        "split: %d training, %d validation, %d test rows (test frauds: %d)",
        len(train),
        len(validation),
        len(test),
        int(test[TX_FRAUD].sum()),
    )
    return Split(train=train, validation=validation, test=test, periods=periods)


def figures_on_test_set(split: Split, scores: np.ndarray, k: int) -> dict[str, float]:
    """AP and CP@k over the split's test rows (``scores`` in ``split.test`` order)."""
    test = split.test
    labels = test[TX_FRAUD].to_numpy(dtype=np.int8)
    days = test[TX_DATETIME].to_numpy().astype("datetime64[D]")
    cards = test[CUSTOMER_ID].to_numpy()
    return {
        "average_precision": metrics.average_precision(labels, scores),
        "card_precision_at_k": metrics.card_precision_at_k(days, cards, labels, scores, k),
    }
