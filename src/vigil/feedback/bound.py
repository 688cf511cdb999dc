"""What the feedback protocol allows: an informed oracle, and where a replay's misses come from.

A fraud at time ``t`` is *knowable* from what the protocol gives a model when:

- its scenario is 1 (amount > 220) or 3 (compromised customer): always (a generous reading:
  the amount and the card's habit show them);
- its scenario is 2 (compromised terminal): only if a fraud of the same compromise of its
  terminal is known before ``t`` — a verdict marking the terminal compromised, reviewed
  before ``t``, or a scenario-2 fraud there whose delayed label arrived before ``t``
  (transaction time + delay < ``t``) — on a transaction less than the generator's 28-day
  compromise window before ``t``.

The informed oracle scores a knowable fraud above everything else (2 + a fallback score) and
every other transaction by the fallback (scores in [0, 1]); replayed under the investigator,
its reviews, hence its discovery of compromised terminals, follow those scores. Scoring
knowable frauds first is the most any model can do with the protocol's information, so its
card precision bounds what a verdict-using model with that fallback's ranking of the rest
can reach.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from vigil import fraud_metrics as metrics
from vigil.data import schema
from vigil.data.simulate import TERMINAL_COMPROMISE_DAYS
from vigil.features.verdicts import REVIEWED_AT, TERMINAL_COMPROMISED
from vigil.feedback.evaluation import Scorer
from vigil.feedback.investigator import COMPROMISED_TERMINAL_SCENARIO

KNOWN_AT = "known_at"
WINDOW = pd.Timedelta(days=TERMINAL_COMPROMISE_DAYS)


def labelled_frauds(frame: pd.DataFrame, delay_days: int) -> pd.DataFrame:
    """The frauds of ``frame`` (terminal, time, scenario) with the time their delayed label
    arrives."""
    frauds = frame[frame[schema.TX_FRAUD] == 1]
    labelled = frauds[[schema.TERMINAL_ID, schema.TX_DATETIME, schema.TX_FRAUD_SCENARIO]].copy()
    labelled[KNOWN_AT] = labelled[schema.TX_DATETIME] + pd.Timedelta(days=delay_days)
    return labelled.reset_index(drop=True)


def labelled_compromises(frame: pd.DataFrame, delay_days: int) -> pd.DataFrame:
    """The scenario-2 frauds of ``frame`` with the time their delayed label arrives."""
    labelled = labelled_frauds(frame, delay_days)
    scenario = labelled.pop(schema.TX_FRAUD_SCENARIO)
    return labelled[scenario == COMPROMISED_TERMINAL_SCENARIO].reset_index(drop=True)


def _marks(log: pd.DataFrame) -> pd.DataFrame:
    marked = log[(log[schema.TX_FRAUD] == 1) & (log[TERMINAL_COMPROMISED] == 1)]
    marks = marked[[schema.TERMINAL_ID, schema.TX_DATETIME]].copy()
    marks[KNOWN_AT] = marked[REVIEWED_AT].to_numpy()
    return marks.reset_index(drop=True)


def _known_before(rows: pd.DataFrame, evidence: pd.DataFrame) -> NDArray[np.bool_]:
    """Per row: a piece of ``evidence`` at its terminal known before the row's time, on a
    transaction inside the compromise window before it."""
    if rows.empty or evidence.empty:
        return np.zeros(len(rows), bool)
    left = pd.DataFrame(
        {
            "position": np.arange(len(rows)),
            schema.TERMINAL_ID: rows[schema.TERMINAL_ID].to_numpy(),
            "t": rows[schema.TX_DATETIME].to_numpy(),
        }
    )
    pairs = left.merge(evidence, on=schema.TERMINAL_ID)
    hit = (pairs[KNOWN_AT] < pairs["t"]) & (pairs[schema.TX_DATETIME] > pairs["t"] - WINDOW)
    known = np.zeros(len(rows), bool)
    known[pairs.loc[hit, "position"].to_numpy()] = True
    return known


@dataclass(frozen=True)
class Knowledge:
    """Per row: a fraud, knowable (see the module docstring), and for a scenario-2 fraud
    whether its terminal was marked by a verdict / labelled by a delayed label before it."""

    fraud: NDArray[np.bool_]
    knowable: NDArray[np.bool_]
    marked: NDArray[np.bool_]
    labelled: NDArray[np.bool_]


def knowledge(rows: pd.DataFrame, log: pd.DataFrame, labelled: pd.DataFrame) -> Knowledge:
    """What the protocol lets a model know about ``rows`` (``log``: the verdict log;
    ``labelled``: :func:`labelled_compromises`)."""
    fraud = rows[schema.TX_FRAUD].to_numpy() == 1
    terminal = fraud & (rows[schema.TX_FRAUD_SCENARIO].to_numpy() == COMPROMISED_TERMINAL_SCENARIO)
    marked, by_label = np.zeros(len(rows), bool), np.zeros(len(rows), bool)
    at = np.flatnonzero(terminal)
    marked[at] = _known_before(rows.iloc[at], _marks(log))
    by_label[at] = _known_before(rows.iloc[at], labelled)
    knowable = (fraud & ~terminal) | marked | by_label
    return Knowledge(fraud, knowable, marked, by_label)


def terminal_alerts(
    rows: pd.DataFrame, log: pd.DataFrame, labelled: pd.DataFrame
) -> NDArray[np.bool_]:
    """Per row, from what a deployed system knows (no scenario, no label of the row): its
    terminal has a fraud marked compromised by a verdict or a fraud whose delayed label
    arrived (``labelled``: :func:`labelled_frauds`) before it, inside the window before it."""
    evidence = labelled[[schema.TERMINAL_ID, schema.TX_DATETIME, KNOWN_AT]]
    return _known_before(rows, _marks(log)) | _known_before(rows, evidence)


def informed_oracle(labelled: pd.DataFrame, fallback: Scorer) -> Scorer:
    """Knowable frauds score 2 + their fallback score, every other row its fallback score."""

    def score(rows: pd.DataFrame, log: pd.DataFrame) -> np.ndarray:
        base = fallback(rows, log)
        return np.where(knowledge(rows, log, labelled).knowable, 2.0 + base, base)

    return score


def card_days(
    test: pd.DataFrame,
    scores: np.ndarray,
    log: pd.DataFrame,
    labelled: pd.DataFrame,
    k: int,
) -> pd.DataFrame:
    """One row per compromised card-day card precision@k counts on ``test`` (its rows in
    ``scores`` order): ``found`` (among the day's k investigated cards), the ``scenario`` of
    the card's highest-scored fraud that day, and whether any of its frauds that day was
    ``knowable`` / at a terminal ``marked`` or ``labelled`` before it."""
    days = test[schema.TX_DATETIME].to_numpy().astype("datetime64[D]")
    cards, labels = test[schema.CUSTOMER_ID].to_numpy(), test[schema.TX_FRAUD].to_numpy()
    known = knowledge(test, log, labelled)
    frauds = pd.DataFrame(
        {
            "day": days,
            "card": cards,
            "score": scores,
            "scenario": test[schema.TX_FRAUD_SCENARIO].to_numpy(),
            "knowable": known.knowable,
            "marked": known.marked,
            "labelled": known.labelled,
        }
    )[known.fraud]
    frauds = frauds.sort_values("score", ascending=False, kind="mergesort")
    per_card = frauds.groupby(["day", "card"], sort=True).agg(
        scenario=("scenario", "first"),
        knowable=("knowable", "any"),
        marked=("marked", "any"),
        labelled=("labelled", "any"),
    )
    rows = []
    for day in metrics.investigated_cards_per_day(days, cards, labels, scores, k):
        for card in day.compromised:
            rows.append((day.day, card, bool(np.isin(card, day.investigated))))
    counted = pd.DataFrame(rows, columns=["day", "card", "found"])
    return counted.join(per_card, on=["day", "card"])


def _episodes(terminals: np.ndarray, times: np.ndarray) -> NDArray[np.int64]:
    """Episode numbers of frauds sorted by terminal and time: a new episode at another
    terminal or a window after the current one's first fraud's day."""
    days = times.astype("datetime64[D]")
    window = np.timedelta64(TERMINAL_COMPROMISE_DAYS, "D")
    episode = np.empty(len(times), np.int64)
    number, terminal, start = -1, None, None
    for i in range(len(times)):
        if terminals[i] != terminal or start is None or times[i] >= start + window:
            number, terminal, start = number + 1, terminals[i], days[i]
        episode[i] = number
    return episode


def compromises(frame: pd.DataFrame, log: pd.DataFrame, delay_days: int) -> pd.DataFrame:
    """One row per compromise (a terminal's scenario-2 frauds within the window from the
    first): ``start`` (the first fraud's day, the compromise's day or a later one), its
    ``first_fraud``, ``last_fraud``, ``first_mark`` (the first verdict marking it, NaT if
    none) and ``first_label`` (first fraud + delay)."""
    frauds = labelled_compromises(frame, delay_days).sort_values(
        [schema.TERMINAL_ID, schema.TX_DATETIME]
    )
    frauds["episode"] = _episodes(
        frauds[schema.TERMINAL_ID].to_numpy(), frauds[schema.TX_DATETIME].to_numpy()
    )
    table = frauds.groupby("episode").agg(
        terminal_id=(schema.TERMINAL_ID, "first"),
        first_fraud=(schema.TX_DATETIME, "min"),
        last_fraud=(schema.TX_DATETIME, "max"),
    )
    table = table.reset_index(drop=True)
    table["start"] = table["first_fraud"].dt.normalize()
    marks = _marks(log)
    pairs = table.reset_index().merge(marks, on=schema.TERMINAL_ID)
    inside = (pairs[schema.TX_DATETIME] >= pairs["start"]) & (
        pairs[schema.TX_DATETIME] < pairs["start"] + WINDOW
    )
    table["first_mark"] = pairs[inside].groupby("index")[KNOWN_AT].min()
    table["first_label"] = table["first_fraud"] + pd.Timedelta(days=delay_days)
    return table
