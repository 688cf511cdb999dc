"""The handbook's split: periods in time, known-compromised cards removed from the test set."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from vigil.config import TrainConfig
from vigil.training.splits import Periods, handbook_split, transaction_days

CONFIG = TrainConfig.model_validate(
    {
        "train_start": "2018-07-25",
        "train_days": 7,
        "delay_days": 7,
        "test_days": 7,
        "validation_days": 2,
    }
)
START = datetime(2018, 7, 25, 12)


def _frame(rows: list[tuple[int, int, int]]) -> pd.DataFrame:
    """Rows of (day offset from train start, customer, fraud)."""
    return pd.DataFrame(
        {
            "transaction_id": range(len(rows)),
            "tx_datetime": [START + timedelta(days=d) for d, _, _ in rows],
            "customer_id": [c for _, c, _ in rows],
            "tx_fraud": [f for _, _, f in rows],
        }
    )


def test_periods_follow_the_config() -> None:
    periods = Periods.from_config(CONFIG)
    assert periods.validation_start == date(2018, 7, 30)
    assert periods.delay_start == date(2018, 8, 1)
    assert periods.test_start == date(2018, 8, 8)
    assert periods.test_end == date(2018, 8, 15)


def test_periods_do_not_overlap_and_stay_in_bounds() -> None:
    # Every customer transacts genuinely every day from 10 days before to 25 days after.
    frame = _frame([(d, c, 0) for d in range(-10, 25) for c in range(5)] + [(3, 9, 1)])
    split = handbook_split(frame, CONFIG)
    train_days = set(transaction_days(split.train))
    validation_days = set(transaction_days(split.validation))
    test_days = set(transaction_days(split.test))
    assert train_days == {date(2018, 7, 25) + timedelta(days=i) for i in range(5)}
    assert validation_days == {date(2018, 7, 30), date(2018, 7, 31)}
    assert test_days == {date(2018, 8, 8) + timedelta(days=i) for i in range(7)}
    ids = [set(part.transaction_id) for part in (split.train, split.validation, split.test)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])


def test_known_compromised_cards_are_removed_per_test_day() -> None:
    rows = [(d, c, 0) for d in range(0, 21) for c in (1, 2, 3, 4)]
    rows += [
        (2, 1, 1),  # card 1: fraud in training -> never in test
        (6, 4, 1),  # card 4: fraud in validation (still training) -> never in test
        (7, 2, 1),  # card 2: fraud on the first delay day -> known from test day 1 on
        (14, 3, 1),  # card 3: fraud on test day 0 -> known only after the test week
    ]
    split = handbook_split(_frame(rows), CONFIG)
    test = split.test.assign(day=transaction_days(split.test))
    cards_by_day = test.groupby("day").customer_id.agg(set)
    assert cards_by_day[date(2018, 8, 8)] == {2, 3}
    for i in range(1, 7):
        assert cards_by_day[date(2018, 8, 8) + timedelta(days=i)] == {3}
    assert test.loc[test.tx_fraud == 1, "customer_id"].tolist() == [3]


@pytest.mark.parametrize("validation_days", [0, 7])
def test_bad_validation_days_is_a_clear_error(validation_days: int) -> None:
    config = CONFIG.model_copy(update={"validation_days": validation_days})
    with pytest.raises(ValueError, match="validation_days"):
        Periods.from_config(config)


def test_missing_period_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="test period is empty"):
        handbook_split(_frame([(d, 1, 0) for d in range(10)]), CONFIG)
