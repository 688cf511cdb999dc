"""The informed oracle: which frauds the feedback protocol lets a model know, and the
card-day and compromise diagnostics of a replay."""

from __future__ import annotations

import numpy as np
import pandas as pd

from vigil.features.verdict_sql import empty_verdict_log
from vigil.feedback.bound import (
    card_days,
    compromises,
    informed_oracle,
    knowledge,
    labelled_compromises,
    labelled_frauds,
    terminal_alerts,
)

T0 = pd.Timestamp("2018-08-08")
DAY = pd.Timedelta(days=1)


def transactions(*rows: tuple[int, int, int, pd.Timestamp, int, int]) -> pd.DataFrame:
    """(transaction, card, terminal, time, fraud, scenario) rows."""
    columns = ["transaction_id", "customer_id", "terminal_id", "tx_datetime"]
    frame = pd.DataFrame(rows, columns=[*columns, "tx_fraud", "tx_fraud_scenario"])
    return frame.astype({"tx_fraud": "int8", "tx_fraud_scenario": "int8"})


def marks(*rows: tuple[int, pd.Timestamp, pd.Timestamp]) -> pd.DataFrame:
    """A verdict log of frauds marked compromised: (terminal, transaction time, reviewed at)."""
    log = empty_verdict_log()
    for i, (terminal, at, reviewed) in enumerate(rows):
        log.loc[i] = [900 + i, 90, terminal, at, 1, 1, reviewed]
    return log.astype({"tx_fraud": "int8", "terminal_compromised": "int8"})


def test_a_terminal_fraud_is_knowable_once_a_mark_or_a_label_of_its_compromise_is_known() -> None:
    history = transactions(
        (1, 10, 7, T0 - 10 * DAY, 1, 2),  # labelled at T0 - 3 days
        (2, 11, 8, T0 - 40 * DAY, 1, 2),  # labelled long ago: another compromise
    )
    rows = transactions(
        (3, 12, 7, T0, 1, 2),  # terminal 7: labelled before
        (4, 13, 8, T0, 1, 2),  # terminal 8: label older than the 28-day window
        (5, 14, 9, T0, 1, 2),  # terminal 9: marked, reviewed before T0
        (6, 15, 5, T0, 1, 2),  # terminal 5: marked, reviewed after T0
        (7, 16, 6, T0, 1, 1),  # amount fraud: knowable
        (8, 17, 6, T0, 1, 3),  # compromised card: knowable
        (9, 18, 9, T0, 0, 0),  # genuine
    )
    log = marks((9, T0 - 2 * DAY, T0 - DAY), (5, T0 - 2 * DAY, T0 + DAY))
    known = knowledge(rows, log, labelled_compromises(history, delay_days=7))
    assert known.knowable.tolist() == [True, False, True, False, True, True, False]
    assert known.marked.tolist() == [False, False, True, False, False, False, False]
    assert known.labelled.tolist() == [True, False, False, False, False, False, False]
    # a label arriving exactly at the transaction's time is not known before it
    same_time = labelled_compromises(transactions((1, 10, 7, T0 - 7 * DAY, 1, 2)), 7)
    assert not knowledge(rows.iloc[:1], empty_verdict_log(), same_time).knowable.any()


def test_the_oracle_ranks_knowable_frauds_first_then_the_fallback() -> None:
    rows = transactions(
        (1, 10, 7, T0, 1, 2),  # unknowable terminal fraud
        (2, 11, 8, T0, 1, 1),  # knowable
        (3, 12, 9, T0, 0, 0),
        (4, 13, 9, T0, 1, 3),  # knowable
    )
    fallback = np.array([0.9, 0.1, 0.8, 0.2])
    oracle = informed_oracle(labelled_compromises(rows, 7), lambda r, _log: fallback)
    scores = oracle(rows, empty_verdict_log())
    assert np.argsort(-scores).tolist() == [3, 1, 0, 2]
    np.testing.assert_allclose(scores, [0.9, 2.1, 0.8, 2.2])


def test_card_days_split_the_compromised_cards_into_found_and_missed() -> None:
    test = transactions(
        (1, 10, 7, T0, 1, 1),
        (2, 11, 8, T0, 1, 2),
        (3, 12, 9, T0, 0, 0),
        (4, 11, 8, T0 + DAY, 1, 2),  # card 11 missed on day 1, still counted on day 2
        (5, 10, 7, T0 + DAY, 1, 1),  # card 10 found on day 1: gone from day 2
    )
    scores = np.array([0.9, 0.1, 0.8, 0.9, 0.9])
    log = marks((8, T0 - DAY, T0 + pd.Timedelta(hours=1)))
    days = card_days(test, scores, log, labelled_compromises(test, 7), k=2)
    assert days[["card", "found", "scenario"]].values.tolist() == [
        [10, True, 1],
        [11, False, 2],
        [11, True, 2],
    ]
    assert days["knowable"].tolist() == [True, False, True]  # the mark came after 00:00
    assert days["marked"].tolist() == [False, False, True]


def test_compromises_are_a_terminals_frauds_within_the_window_with_their_first_mark() -> None:
    frame = transactions(
        (1, 10, 7, T0, 1, 2),
        (2, 11, 7, T0 + 27 * DAY, 1, 2),
        (3, 12, 7, T0 + 28 * DAY, 1, 2),  # a new compromise of terminal 7
        (4, 13, 8, T0 + DAY, 1, 2),
        (5, 14, 8, T0 + DAY, 1, 1),  # not a terminal fraud
    )
    log = marks((7, T0 + 27 * DAY, T0 + 28 * DAY), (7, T0 + 28 * DAY, T0 + 30 * DAY))
    table = compromises(frame, log, delay_days=7)
    assert table["terminal_id"].tolist() == [7, 7, 8]
    assert table["start"].tolist() == [T0, T0 + 28 * DAY, T0 + DAY]
    assert table["last_fraud"].tolist() == [T0 + 27 * DAY, T0 + 28 * DAY, T0 + DAY]
    assert table["first_mark"].tolist()[:2] == [T0 + 28 * DAY, T0 + 30 * DAY]
    assert pd.isna(table["first_mark"].iloc[2])
    assert table["first_label"].tolist() == [T0 + 7 * DAY, T0 + 35 * DAY, T0 + 8 * DAY]


def test_terminal_alerts_use_marks_and_any_labelled_fraud_but_not_the_rows_own_label() -> None:
    history = transactions(
        (1, 10, 7, T0 - 10 * DAY, 1, 1),  # an amount fraud, labelled at T0 - 3 days
        (2, 11, 8, T0 - 40 * DAY, 1, 2),  # labelled, but older than the window
    )
    rows = transactions(
        (3, 12, 7, T0, 0, 0),  # genuine, at a terminal with a labelled fraud: alerted
        (4, 13, 8, T0, 1, 2),
        (5, 14, 9, T0, 0, 0),  # marked before
        (6, 15, 5, T0, 1, 2),  # marked after
    )
    log = marks((9, T0 - 2 * DAY, T0 - DAY), (5, T0 - 2 * DAY, T0 + DAY))
    alerts = terminal_alerts(rows, log, labelled_frauds(history, delay_days=7))
    assert alerts.tolist() == [True, False, True, False]
