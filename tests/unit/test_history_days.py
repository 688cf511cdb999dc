"""``train.history_days``: more fitting days before ``train_start``, same validation and test."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from vigil.config import Settings, TrainConfig
from vigil.data.io import read_transactions
from vigil.training.data import history_start
from vigil.training.splits import Periods, handbook_split, transaction_days

HANDBOOK_FILE = "transactions_2018-04-01_2018-08-14.parquet"
START = datetime(2018, 7, 25, 12)


def _config(history_days: int) -> TrainConfig:
    return TrainConfig.model_validate({"validation_days": 2, "history_days": history_days})


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


def test_fitting_starts_history_days_earlier() -> None:
    periods = Periods.from_config(_config(14))
    assert periods.fit_start == date(2018, 7, 11)
    assert periods.train_start == date(2018, 7, 25)
    assert periods.validation_start == date(2018, 7, 30)


def test_history_rows_are_fitted_but_leave_validation_and_test_alone() -> None:
    rows = [(d, c, 0) for d in range(-20, 21) for c in (1, 2, 3)]
    rows += [(-5, 1, 1), (2, 2, 1)]  # card 1: fraud in history only; card 2: in training
    base, extended = (handbook_split(_frame(rows), _config(h)) for h in (0, 14))
    fit_days = set(transaction_days(extended.train))
    assert min(fit_days) == date(2018, 7, 11) and max(fit_days) == date(2018, 7, 29)
    assert len(extended.train) == len(base.train) + 14 * 3 + 1
    assert extended.validation.transaction_id.tolist() == base.validation.transaction_id.tolist()
    assert extended.test.transaction_id.tolist() == base.test.transaction_id.tolist()
    # The protocol removes cards frauded from train_start on, not during the extra history.
    assert set(extended.test.customer_id) == {1, 3}


def test_feature_history_reaches_back_from_the_first_fitting_day() -> None:
    settings = Settings.model_validate({"train": {"history_days": 35}})
    # 35 history days, then the longest window (30) + label delay (7) + 1 day.
    assert history_start(settings) == pd.Timestamp(date(2018, 7, 25) - timedelta(days=35 + 38))


@pytest.mark.parametrize("history_days", [0, 35])
def test_handbook_test_set_is_unchanged_by_history(handbook_dir: Path, history_days: int) -> None:
    transactions = read_transactions(handbook_dir / HANDBOOK_FILE)
    split = handbook_split(transactions, TrainConfig(history_days=history_days))
    assert len(split.test) == 58_264
    assert int(split.test.tx_fraud.sum()) == 385
