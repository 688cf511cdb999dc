"""Hand-computed feature values at the edges, checked offline (DuckDB) and online (replay)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from vigil.config import FeaturesConfig
from vigil.features import definitions as fd
from vigil.features.offline import compute_features_frame
from vigil.features.online import OnlineFeatureComputer
from vigil.features.replay import replay
from vigil.features.state import InMemoryStateStore

CONFIG = FeaturesConfig()  # windows 1, 7, 30 days; delay 7 days; night <= 6 h; extended
T0 = datetime(2018, 4, 2, 12, 0, 0)  # a Monday noon
DAY, SECOND = timedelta(days=1), timedelta(seconds=1)
CAP = 30 * 86_400.0  # seconds-since-previous when there is none (the longest window)
COLUMNS = ["transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount", "tx_fraud"]

Rows = list[tuple[int, datetime, int, int, float, int]]


def offline(rows: Rows) -> pd.DataFrame:
    frame = compute_features_frame(CONFIG, pd.DataFrame(rows, columns=COLUMNS))
    return frame.set_index("transaction_id")[fd.feature_names(CONFIG)]


def online(rows: Rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=COLUMNS)
    computer = OnlineFeatureComputer(CONFIG, InMemoryStateStore(), dtype=np.float64)
    values = replay(computer, frame)
    ids = frame.sort_values(["tx_datetime", "transaction_id"])["transaction_id"]
    return pd.DataFrame(values, index=ids.to_numpy(), columns=fd.feature_names(CONFIG))


ENGINES: dict[str, Callable[[Rows], pd.DataFrame]] = {"offline": offline, "online": online}


@pytest.fixture(params=sorted(ENGINES))
def features(request: pytest.FixtureRequest) -> Callable[[Rows], pd.DataFrame]:
    return ENGINES[request.param]


def test_customer_window_edges(features: Callable[[Rows], pd.DataFrame]) -> None:
    # exactly one day earlier is OUT of the 1-day window, one second later is IN
    got = features(
        [
            (1, T0, 1, 100, 10.0, 0),
            (2, T0 + DAY, 1, 101, 20.0, 0),
            (3, T0 + 2 * DAY - SECOND, 1, 102, 30.0, 0),
        ]
    )
    assert got.loc[2, fd.customer_nb_tx(1)] == 1
    assert got.loc[2, fd.customer_avg_amount(1)] == 20.0
    assert got.loc[2, fd.customer_nb_tx(7)] == 2
    assert got.loc[2, fd.customer_avg_amount(7)] == 15.0
    assert got.loc[3, fd.customer_nb_tx(1)] == 2
    assert got.loc[3, fd.customer_avg_amount(1)] == 25.0
    assert got.loc[3, fd.customer_avg_amount(30)] == 20.0
    assert got.loc[3, fd.AMOUNT_OVER_CUSTOMER_AVG] == 1.5
    assert got[fd.SECONDS_SINCE_CUSTOMER_PREV_TX].tolist() == [CAP, 86_400.0, 86_399.0]


def test_label_delay_edges(features: Callable[[Rows], pd.DataFrame]) -> None:
    # a fraud exactly d days before counts; one second less than d days before does not
    got = features(
        [
            (10, T0, 10, 200, 50.0, 1),
            (11, T0 + 7 * DAY, 11, 200, 5.0, 0),
            (12, T0 + 7 * DAY - SECOND, 12, 200, 5.0, 0),
            (13, T0 + 8 * DAY, 13, 200, 5.0, 0),
            (14, T0 + 7 * DAY, 10, 201, 150.0, 0),
        ]
    )
    assert got.loc[11, [fd.terminal_nb_tx(1), fd.terminal_risk(1)]].tolist() == [1.0, 1.0]
    assert got.loc[12, [fd.terminal_nb_tx(1), fd.terminal_risk(1)]].tolist() == [0.0, 0.0]
    assert got.loc[12, [fd.terminal_nb_tx(30), fd.terminal_risk(30)]].tolist() == [0.0, 0.0]
    # eight days later the fraud has left the 1-day delayed window but not the 7-day one
    assert got.loc[13, [fd.terminal_nb_tx(1), fd.terminal_risk(1)]].tolist() == [0.0, 0.0]
    assert got.loc[13, [fd.terminal_nb_tx(7), fd.terminal_risk(7)]].tolist() == [1.0, 1.0]
    # the customer's own fraud, d days old, enters its customer risk; 7-day window drops it
    assert got.loc[14, fd.CUSTOMER_RISK_LONGEST] == 1.0
    assert got.loc[14, fd.customer_nb_tx(7)] == 1
    assert got.loc[14, fd.customer_avg_amount(30)] == 100.0


def test_first_transaction_and_fresh_terminal(features: Callable[[Rows], pd.DataFrame]) -> None:
    got = features([(20, T0, 20, 300, 42.5, 0)]).loc[20]
    expected = {fd.TX_AMOUNT: 42.5, fd.TX_DURING_WEEKEND: 0.0, fd.TX_DURING_NIGHT: 0.0}
    for n in CONFIG.windows_days:
        expected |= {fd.customer_nb_tx(n): 1.0, fd.customer_avg_amount(n): 42.5}
        expected |= {fd.terminal_nb_tx(n): 0.0, fd.terminal_risk(n): 0.0}
    expected |= {
        fd.AMOUNT_OVER_CUSTOMER_AVG: 1.0,
        fd.SECONDS_SINCE_CUSTOMER_PREV_TX: CAP,
        fd.CUSTOMER_RISK_LONGEST: 0.0,
        fd.AMOUNT_OVER_PRIOR_MEDIAN: 1.0,
        fd.AMOUNT_OVER_PRIOR_MEAN: 1.0,
        fd.max_amount_over_prior_median(7): 1.0,
        fd.DAYS_SINCE_FIRST_KNOWN_FRAUD: 0.0,
        fd.DAYS_SINCE_LAST_KNOWN_FRAUD: 0.0,
        fd.TERMINAL_KNOWN_FRAUDS: 0.0,
    }
    assert got.to_dict() == expected


@pytest.mark.parametrize(
    ("moment", "weekend", "night"),
    [
        (datetime(2018, 4, 1, 6, 59, 59), 1.0, 1.0),  # Sunday, last night second
        (datetime(2018, 4, 7, 7, 0, 0), 1.0, 0.0),  # Saturday morning
        (datetime(2018, 4, 6, 23, 0, 0), 0.0, 0.0),  # Friday evening
        (datetime(2018, 4, 2, 0, 0, 0), 0.0, 1.0),  # Monday midnight
    ],
)
def test_weekend_and_night_flags(
    features: Callable[[Rows], pd.DataFrame], moment: datetime, weekend: float, night: float
) -> None:
    got = features([(30, moment, 30, 400, 1.0, 0)]).loc[30]
    assert (got[fd.TX_DURING_WEEKEND], got[fd.TX_DURING_NIGHT]) == (weekend, night)


def test_ties_follow_transaction_id_order(features: Callable[[Rows], pd.DataFrame]) -> None:
    # same customer, same instant: id 40 comes first and does not see id 41
    got = features([(41, T0, 40, 500, 10.0, 0), (40, T0, 40, 501, 30.0, 0)])
    assert got.loc[40, [fd.customer_nb_tx(1), fd.customer_avg_amount(1)]].tolist() == [1.0, 30.0]
    assert got.loc[41, [fd.customer_nb_tx(1), fd.customer_avg_amount(1)]].tolist() == [2.0, 20.0]
    assert got.loc[40, fd.SECONDS_SINCE_CUSTOMER_PREV_TX] == CAP
    assert got.loc[41, fd.SECONDS_SINCE_CUSTOMER_PREV_TX] == 0.0


def test_customer_amount_baseline(features: Callable[[Rows], pd.DataFrame]) -> None:
    # prior = the customer's transactions at earlier instants in the last 30 days
    got = features(
        [
            (51, T0, 50, 100, 10.0, 0),
            (52, T0 + DAY, 50, 100, 30.0, 0),
            (53, T0 + 2 * DAY, 50, 100, 20.0, 0),
            (54, T0 + 2 * DAY, 50, 100, 100.0, 0),  # same instant as 53: does not see it
            (55, T0 + 9 * DAY - SECOND, 50, 100, 40.0, 0),
            (56, T0 + 9 * DAY, 50, 100, 40.0, 0),  # 53 and 54 exactly 7 days earlier: out
            (57, T0 + 10 * DAY, 50, 100, 5000.0, 0),
            (58, T0 + 31 * DAY, 50, 100, 70.0, 0),  # 51 and 52 are 31 and 30 days old: out
        ]
    )
    median, mean = fd.AMOUNT_OVER_PRIOR_MEDIAN, fd.AMOUNT_OVER_PRIOR_MEAN
    recent = fd.max_amount_over_prior_median(7)
    expected = {
        51: (1.0, 1.0, 1.0),  # no prior transaction
        52: (3.0, 3.0, 3.0),  # prior [10]
        53: (1.0, 1.0, 1.5),  # prior [10, 30]: median 20, mean 20; largest in 7 days 30
        54: (5.0, 5.0, 5.0),  # prior [10, 30]
        55: (1.6, 1.0, 4.0),  # prior [10, 30, 20, 100]: median 25, mean 40; 100 within 7 days
        56: (40 / 30, 1.0, 40 / 30),  # prior adds 40: median 30, mean 40; largest 40
        57: (20.0, 20.0, 20.0),  # 5000 / 35, 5000 / 40: clipped at the cap
        58: (1.75, 70 / 1040, 70 / 40),  # prior [20, 100, 40, 40, 5000]: median 40, mean 1040
    }
    for tx_id, values in expected.items():
        assert got.loc[tx_id, [median, mean, recent]].tolist() == pytest.approx(values), tx_id


def test_terminal_fraud_run(features: Callable[[Rows], pd.DataFrame]) -> None:
    # known frauds: labels in the delayed 30-day window (t - 37 days, t - 7 days]
    got = features(
        [
            (60, T0, 60, 600, 1.0, 1),
            (61, T0 + 2 * DAY, 61, 600, 1.0, 1),
            (62, T0 + 3 * DAY, 62, 600, 1.0, 0),
            (63, T0 + 7 * DAY, 63, 600, 1.0, 0),  # 60 exactly 7 days old: known
            (64, T0 + 10 * DAY, 64, 600, 1.0, 0),
            (65, T0 + 37 * DAY, 65, 600, 1.0, 0),  # 60 exactly 37 days old: out
            (66, T0 + 39 * DAY + SECOND, 66, 600, 1.0, 0),  # no fraud left in the window
        ]
    )
    columns = [fd.DAYS_SINCE_FIRST_KNOWN_FRAUD, fd.DAYS_SINCE_LAST_KNOWN_FRAUD]
    columns.append(fd.TERMINAL_KNOWN_FRAUDS)
    assert got.loc[60, columns].tolist() == [0.0, 0.0, 0.0]
    assert got.loc[62, columns].tolist() == [0.0, 0.0, 0.0]  # 60 only 3 days old
    assert got.loc[63, columns].tolist() == [7.0, 7.0, 1.0]
    assert got.loc[64, columns].tolist() == [10.0, 8.0, 2.0]
    assert got.loc[65, columns].tolist() == [35.0, 35.0, 1.0]
    assert got.loc[66, columns].tolist() == [0.0, 0.0, 0.0]
