"""Vigil's features on the handbook's data equal a pandas reference written as the handbook does.

The reference follows the handbook's chapter 3 code: per customer, ``rolling('nd')`` on
TX_DATETIME for counts and mean amounts; per terminal, ``rolling(delay + n) - rolling(delay)``
of TX_FRAUD sums and counts, risk = frauds / count with NaN -> 0. Rows are sorted by
(TX_DATETIME, TRANSACTION_ID) first: that is Vigil's tie order, and the handbook's data
are already in that order.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vigil.config import FeaturesConfig
from vigil.features import definitions as fd
from vigil.features.offline import compute_features_frame

pytestmark = pytest.mark.handbook

CONFIG = FeaturesConfig(extended=False, extra=[])
FILE = "transactions_2018-04-01_2018-08-14.parquet"


def customer_reference(customer: pd.DataFrame, windows: list[int]) -> pd.DataFrame:
    customer = customer.sort_values(["TX_DATETIME", "TRANSACTION_ID"]).set_index("TX_DATETIME")
    out = pd.DataFrame(index=customer["TRANSACTION_ID"])
    for n in windows:
        total = customer["TX_AMOUNT"].rolling(f"{n}d").sum()
        count = customer["TX_AMOUNT"].rolling(f"{n}d").count()
        out[fd.customer_nb_tx(n)] = count.to_numpy()
        out[fd.customer_avg_amount(n)] = (total / count).to_numpy()
    return out


def terminal_reference(terminal: pd.DataFrame, windows: list[int], delay: int) -> pd.DataFrame:
    terminal = terminal.sort_values(["TX_DATETIME", "TRANSACTION_ID"]).set_index("TX_DATETIME")
    fraud = terminal["TX_FRAUD"]
    frauds_delay, count_delay = fraud.rolling(f"{delay}d").sum(), fraud.rolling(f"{delay}d").count()
    out = pd.DataFrame(index=terminal["TRANSACTION_ID"])
    for n in windows:
        frauds = fraud.rolling(f"{delay + n}d").sum() - frauds_delay
        count = fraud.rolling(f"{delay + n}d").count() - count_delay
        out[fd.terminal_nb_tx(n)] = count.to_numpy()
        out[fd.terminal_risk(n)] = (frauds / count).fillna(0).to_numpy()
    return out


@functools.cache
def read_first_days(path: Path) -> pd.DataFrame:
    columns = ["TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT"]
    first_40_days = [("TX_DATETIME", "<", pd.Timestamp("2018-05-11"))]
    return pd.read_parquet(path, columns=[*columns, "TX_FRAUD"], filters=first_40_days)


@pytest.fixture
def first_days(handbook_dir: Path) -> pd.DataFrame:
    return read_first_days(handbook_dir / FILE)


def compare(vigil: pd.DataFrame, reference: pd.DataFrame, names: list[str]) -> None:
    got = vigil.set_index("transaction_id").loc[reference.index, names]
    counts = [n for n in names if "_nb_tx_" in n]
    np.testing.assert_array_equal(got[counts].to_numpy(), reference[counts].to_numpy())
    np.testing.assert_allclose(got[names].to_numpy(), reference[names].to_numpy(), rtol=1e-9)


def test_customer_features_match_handbook_rolling(first_days: pd.DataFrame) -> None:
    some = first_days[first_days["CUSTOMER_ID"] < 80]
    reference = pd.concat(
        customer_reference(group, CONFIG.windows_days) for _, group in some.groupby("CUSTOMER_ID")
    )
    names = [n for n in fd.feature_names(CONFIG) if n.startswith("customer_id_")]
    compare(compute_features_frame(CONFIG, some), reference, names)


def test_terminal_features_match_handbook_rolling(first_days: pd.DataFrame) -> None:
    some = first_days[first_days["TERMINAL_ID"] < 100]
    reference = pd.concat(
        terminal_reference(group, CONFIG.windows_days, CONFIG.label_delay_days)
        for _, group in some.groupby("TERMINAL_ID")
    )
    names = [n for n in fd.feature_names(CONFIG) if n.startswith("terminal_id_")]
    assert reference[fd.terminal_risk(7)].max() > 0  # frauds do enter the windows
    compare(compute_features_frame(CONFIG, some), reference, names)


def test_row_features_match_handbook(first_days: pd.DataFrame) -> None:
    some = first_days.head(5_000)
    got = (
        compute_features_frame(CONFIG, some).set_index("transaction_id").loc[some["TRANSACTION_ID"]]
    )
    np.testing.assert_array_equal(
        got[fd.TX_DURING_WEEKEND].to_numpy(), (some["TX_DATETIME"].dt.weekday >= 5).to_numpy()
    )
    np.testing.assert_array_equal(
        got[fd.TX_DURING_NIGHT].to_numpy(), (some["TX_DATETIME"].dt.hour <= 6).to_numpy()
    )
    np.testing.assert_array_equal(got[fd.TX_AMOUNT].to_numpy(), some["TX_AMOUNT"].to_numpy())
