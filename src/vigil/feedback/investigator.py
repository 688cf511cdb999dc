"""A simulated investigator: each review round, the top cards are reviewed and labelled.

Each round (``every_hours`` long, rounds aligned on midnight) the investigator takes the
round's transactions, drops cards known compromised in the last ``block_days`` (a fraud
confirmed by a verdict, or a fraud whose delayed label has arrived: such a card is blocked
and reissued), ranks the remaining cards by their highest score, reviews the top
``cards_per_day * every_hours / 24`` and gives a verdict on each of their transactions of
the round, reviewed at the end of the round: the true label, and for a fraud of a
compromised terminal (the generator's scenario 2) the mark "terminal compromised" when
``mark_terminals`` is on. With daily rounds on the test set the reviewed cards are the cards
that card precision@k counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from vigil.data import schema
from vigil.features.verdict_sql import empty_verdict_log
from vigil.features.verdicts import REVIEWED_AT, TERMINAL_COMPROMISED, VERDICT_COLUMNS

COMPROMISED_TERMINAL_SCENARIO = 2  # the handbook generator's compromised-terminal frauds


@dataclass(frozen=True)
class ReviewPolicy:
    """The review budget and rhythm."""

    cards_per_day: int = 100
    every_hours: int = 24
    mark_terminals: bool = True
    block_days: int = 14  # a card known compromised is not reviewed again for this long

    def __post_init__(self) -> None:
        if self.cards_per_day < 1 or self.every_hours < 1 or 24 % self.every_hours:
            raise ValueError(
                f"review policy needs cards_per_day >= 1 and every_hours dividing 24, got {self}"
            )

    @property
    def cards_per_round(self) -> int:
        """Cards reviewed in one round (the daily budget spread over the day's rounds)."""
        return max(1, round(self.cards_per_day * self.every_hours / 24))


def review_rounds(
    start: pd.Timestamp, end: pd.Timestamp, every_hours: int
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Half-open ``[lo, hi)`` rounds from ``start`` (a midnight) to ``end``."""
    bounds = pd.date_range(start, end, freq=f"{every_hours}h", inclusive="left")
    return [(lo, min(lo + pd.Timedelta(hours=every_hours), end)) for lo in bounds]


@dataclass
class ReviewState:
    """The verdict log so far."""

    log: pd.DataFrame = field(default_factory=empty_verdict_log)

    def extend(self, verdicts: pd.DataFrame) -> None:
        """Append a round's verdicts."""
        if not verdicts.empty:
            parts = [self.log, verdicts] if len(self.log) else [verdicts]
            self.log = pd.concat(parts, ignore_index=True)

    def copy(self) -> ReviewState:
        """An independent copy (a replay from the same point)."""
        return ReviewState(self.log.copy())


def blocked_cards(
    frame: pd.DataFrame, state: ReviewState, now: pd.Timestamp, delay_days: int, block_days: int
) -> set[int]:
    """Cards known compromised at ``now`` within ``block_days``: a fraud verdict reviewed in
    ``(now - block, now]`` or a fraud labelled by now (transaction in the block window before
    ``now - delay``)."""
    block, delay = pd.Timedelta(days=block_days), pd.Timedelta(days=delay_days)
    log = state.log
    reviewed = log[(log[schema.TX_FRAUD] == 1) & (log[REVIEWED_AT] > now - block)]
    times = frame[schema.TX_DATETIME]
    labelled = (
        (times <= now - delay) & (times > now - delay - block) & (frame[schema.TX_FRAUD] == 1)
    )
    return set(reviewed[schema.CUSTOMER_ID].tolist()) | set(
        frame.loc[labelled, schema.CUSTOMER_ID].tolist()
    )


def review(
    rows: pd.DataFrame,
    scores: np.ndarray,
    blocked: set[int],
    policy: ReviewPolicy,
    reviewed_at: pd.Timestamp,
) -> pd.DataFrame:
    """Verdicts on the transactions of the round's top cards (see the module docstring)."""
    open_rows = ~rows[schema.CUSTOMER_ID].isin(blocked).to_numpy()
    if not open_rows.any():
        return empty_verdict_log()
    cards = pd.Series(scores[open_rows], index=rows[schema.CUSTOMER_ID].to_numpy()[open_rows])
    best = cards.groupby(level=0).max()
    order = np.lexsort((best.index.to_numpy(), -best.to_numpy()))  # ties: lower card first
    chosen = set(best.index.to_numpy()[order[: policy.cards_per_round]].tolist())
    reviewed = rows[rows[schema.CUSTOMER_ID].isin(chosen)]
    fraud = reviewed[schema.TX_FRAUD].to_numpy().astype("int8")
    compromised = np.zeros_like(fraud)
    if policy.mark_terminals and schema.TX_FRAUD_SCENARIO in reviewed:
        scenario = reviewed[schema.TX_FRAUD_SCENARIO].to_numpy()
        compromised = ((fraud == 1) & (scenario == COMPROMISED_TERMINAL_SCENARIO)).astype("int8")
    verdicts = reviewed[[schema.TRANSACTION_ID, schema.CUSTOMER_ID, schema.TERMINAL_ID]].copy()
    verdicts[schema.TX_DATETIME] = reviewed[schema.TX_DATETIME].to_numpy()
    verdicts[schema.TX_FRAUD] = fraud
    verdicts[TERMINAL_COMPROMISED] = compromised
    verdicts[REVIEWED_AT] = reviewed_at
    return verdicts[list(VERDICT_COLUMNS)].reset_index(drop=True)


def review_scored_period(
    frame: pd.DataFrame,
    scores: np.ndarray,
    policy: ReviewPolicy,
    delay_days: int,
    end: pd.Timestamp,
    state: ReviewState | None = None,
) -> ReviewState:
    """Review every round of ``frame`` before ``end``, its scores already known (a model
    that did not use verdicts): the verdict log a past deployment would have left."""
    state = state or ReviewState()
    times = frame[schema.TX_DATETIME]
    start = times.min().normalize()
    for lo, hi in review_rounds(start, end, policy.every_hours):
        mask = ((times >= lo) & (times < hi)).to_numpy()
        if not mask.any():
            continue
        blocked = blocked_cards(frame, state, lo, delay_days, policy.block_days)
        state.extend(review(frame[mask], scores[mask], blocked, policy, hi))
    return state
