"""A simulated investigator: each review round, the top cards are reviewed and labelled.

The investigator works the day's queue: the day's transactions scored so far, cards known
compromised in the last ``block_days`` left out (a fraud confirmed by a verdict, or a fraud
whose delayed label has arrived: such a card is blocked and reissued) and so are the cards
already reviewed that day (in the day's earlier rounds: a later day's look-back never counts
for an earlier day), ranked by their highest score. Each round (``every_hours`` long,
aligned on midnight) ends with reviews, within the day's budget of ``cards_per_day`` cards:
in the day's last round the best cards left; in an earlier round the cards whose score
reaches the previous day's cut-off (the score of its last card within the budget), as an
analyst works the alerts above the usual bar as they come in. With daily rounds that is the
day's top ``cards_per_day`` open cards, the cards card precision@k counts on the test set.

A review gives a verdict on each of the card's transactions of the day so far and, with
``lookback_days``, on its earlier transactions of that many days that have no verdict yet
(the cardholder, once contacted, confirms their recent payments; 7 days = everything whose
delayed label has not arrived), all reviewed at the end of the round: the true label, and
for a fraud of a compromised terminal (the generator's scenario 2) the mark "terminal
compromised" when ``mark_terminals`` is on.

Which cards are blocked, which are reviewed that day and what a verdict labels is the review
rule of :mod:`vigil.cases.rule`, the served queue's too; its parameters come from the one
configuration (:meth:`ReviewPolicy.of`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from vigil.cases.rule import block_window
from vigil.config import CasesConfig
from vigil.data import schema
from vigil.features.verdict_sql import empty_verdict_log
from vigil.features.verdicts import REVIEWED_AT, TERMINAL_COMPROMISED, VERDICT_COLUMNS

COMPROMISED_TERMINAL_SCENARIO = 2  # the handbook generator's compromised-terminal frauds
_CASES = CasesConfig()  # the served queue's defaults, the policy's too


@dataclass(frozen=True)
class ReviewPolicy:
    """The review budget and rhythm."""

    cards_per_day: int = _CASES.review_budget  # the served queue's budget (100)
    every_hours: int = 24
    mark_terminals: bool = True
    block_days: int = _CASES.block_days  # a card known compromised is left out this long
    lookback_days: int = 0  # a review also covers the card's unreviewed transactions this far back

    def __post_init__(self) -> None:
        if self.cards_per_day < 1 or self.every_hours < 1 or 24 % self.every_hours:
            raise ValueError(
                f"review policy needs cards_per_day >= 1 and every_hours dividing 24, got {self}"
            )
        if self.lookback_days < 0:
            raise ValueError(f"review policy needs lookback_days >= 0, got {self}")

    @classmethod
    def of(
        cls,
        cases: CasesConfig,
        every_hours: int = 24,
        mark_terminals: bool = True,
        cards_per_day: int | None = None,
        lookback_days: int | None = None,
    ) -> ReviewPolicy:
        """The served queue's rule (``cases``: budget, block and look-back days), with the
        simulation's own knobs; ``cards_per_day``/``lookback_days`` override the served ones."""
        return cls(
            cases.review_budget if cards_per_day is None else cards_per_day,
            every_hours,
            mark_terminals,
            block_days=cases.block_days,
            lookback_days=cases.lookback_days if lookback_days is None else lookback_days,
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
    """The verdict log so far, and the current day's queue (rounds shorter than a day).

    ``day_rows``/``day_scores``: the day's transactions scored so far; ``day_cards``: the
    cards reviewed today; ``cutoff``: the score of the previous day's last card within the
    budget (a round before the day's last reviews the cards that reach it).
    """

    log: pd.DataFrame = field(default_factory=empty_verdict_log)
    day: pd.Timestamp | None = None
    day_rows: pd.DataFrame | None = None
    day_scores: np.ndarray = field(default_factory=lambda: np.empty(0))
    day_cards: set[int] = field(default_factory=set)
    cutoff: float | None = None
    queue: dict[pd.Timestamp, tuple[int, int]] = field(default_factory=dict)

    def extend(self, verdicts: pd.DataFrame) -> None:
        """Append a round's verdicts."""
        if not verdicts.empty:
            parts = [self.log, verdicts] if len(self.log) else [verdicts]
            self.log = pd.concat(parts, ignore_index=True)

    def copy(self) -> ReviewState:
        """An independent copy (a replay from the same point)."""
        return replace(
            self, log=self.log.copy(), day_cards=set(self.day_cards), queue=dict(self.queue)
        )


def blocked_cards(
    frame: pd.DataFrame, state: ReviewState, now: pd.Timestamp, delay_days: int, block_days: int
) -> set[int]:
    """Cards known compromised at ``now`` (:mod:`vigil.cases.rule`): a fraud verdict reviewed
    in :func:`~vigil.cases.rule.block_window` or a fraud whose delayed label (transaction time
    + ``delay_days``) arrived in it."""
    after, until = block_window(now, block_days)
    log = state.log
    reviewed_at = log[REVIEWED_AT]
    reviewed = log[(log[schema.TX_FRAUD] == 1) & (reviewed_at > after) & (reviewed_at <= until)]
    due = frame[schema.TX_DATETIME] + pd.Timedelta(days=delay_days)
    labelled = (due > after) & (due <= until) & (frame[schema.TX_FRAUD] == 1)
    return set(reviewed[schema.CUSTOMER_ID].tolist()) | set(
        frame.loc[labelled, schema.CUSTOMER_ID].tolist()
    )


def _card_ranking(rows: pd.DataFrame, scores: np.ndarray, blocked: set[int]) -> pd.Series:
    """The open cards' highest scores, best first (ties: lower card first)."""
    open_rows = ~rows[schema.CUSTOMER_ID].isin(blocked).to_numpy()
    cards = pd.Series(scores[open_rows], index=rows[schema.CUSTOMER_ID].to_numpy()[open_rows])
    best = cards.groupby(level=0).max()
    order = np.lexsort((best.index.to_numpy(), -best.to_numpy()))
    return best.iloc[order]


def review(
    rows: pd.DataFrame,
    scores: np.ndarray,
    blocked: set[int],
    policy: ReviewPolicy,
    reviewed_at: pd.Timestamp,
    *,
    limit: int | None = None,
    min_score: float = -np.inf,
    history: pd.DataFrame | None = None,
    done: set[int] | None = None,
) -> pd.DataFrame:
    """Verdicts on the transactions of the top open cards of ``rows`` (at most ``limit``,
    default the round's budget, whose highest score reaches ``min_score``), reviewed at
    ``reviewed_at``; with ``policy.lookback_days`` also on the cards' transactions of
    ``history`` in the look-back not reviewed yet (``done``: reviewed transaction ids)."""
    ranking = _card_ranking(rows, scores, blocked)
    ranking = ranking[ranking >= min_score]
    chosen = set(ranking.index[: policy.cards_per_round if limit is None else limit].tolist())
    if not chosen:
        return empty_verdict_log()
    reviewed = rows[rows[schema.CUSTOMER_ID].isin(chosen)]
    if policy.lookback_days and history is not None:
        times = history[schema.TX_DATETIME]
        since = reviewed_at - pd.Timedelta(days=policy.lookback_days)
        earlier = history[
            history[schema.CUSTOMER_ID].isin(chosen).to_numpy()
            & (times >= since).to_numpy()
            & (times < reviewed_at).to_numpy()
            & ~history[schema.TRANSACTION_ID].isin(reviewed[schema.TRANSACTION_ID]).to_numpy()
            & ~history[schema.TRANSACTION_ID].isin(done or set()).to_numpy()
        ]
        reviewed = pd.concat([earlier, reviewed])
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


def review_round(
    frame: pd.DataFrame,
    rows: pd.DataFrame,
    scores: np.ndarray,
    state: ReviewState,
    policy: ReviewPolicy,
    bounds: tuple[pd.Timestamp, pd.Timestamp],
    delay_days: int,
) -> None:
    """One round ``[lo, hi)``: its scored ``rows`` join the day's queue; the investigator
    reviews, at ``hi``, the day's open cards not reviewed today, within what is left of the
    day's budget: in the day's last round the best ones, before it those reaching the
    previous day's cut-off (``frame``: every transaction, for blocking and the look-back)."""
    lo, hi = bounds
    day = lo.normalize()
    if state.day != day:
        if state.day_rows is not None and state.day_rows.size:
            ranking = _card_ranking(state.day_rows, state.day_scores, set())
            state.cutoff = float(ranking.iloc[: policy.cards_per_day].min())
        state.day, state.day_rows, state.day_scores = day, rows, scores
        state.day_cards = set()
    else:
        state.day_rows = pd.concat([state.day_rows, rows])
        state.day_scores = np.concatenate([state.day_scores, scores])
    last = hi >= day + pd.Timedelta(days=1)
    if not last and state.cutoff is None:
        return
    blocked = blocked_cards(frame, state, lo, delay_days, policy.block_days) | state.day_cards
    done = set(state.log[schema.TRANSACTION_ID].tolist()) if policy.lookback_days else None
    verdicts = review(
        state.day_rows,
        state.day_scores,
        blocked,
        policy,
        hi,
        limit=policy.cards_per_day - len(state.day_cards),
        min_score=-np.inf if last else float(state.cutoff),  # type: ignore[arg-type]
        history=frame,
        done=done,
    )
    state.day_cards |= set(verdicts[schema.CUSTOMER_ID].tolist())
    state.extend(verdicts)
    today = verdicts[verdicts[schema.TX_DATETIME] >= day]
    cards, found = state.queue.get(day, (0, 0))
    per_card = today.groupby(schema.CUSTOMER_ID)[schema.TX_FRAUD].max()
    state.queue[day] = (cards + len(per_card), found + int(per_card.sum()))


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
        review_round(frame, frame[mask], scores[mask], state, policy, (lo, hi), delay_days)
    return state
