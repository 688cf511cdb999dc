"""The review rule (:mod:`vigil.cases.rule`) served on PostgreSQL and simulated in pandas agree.

The served queue (:func:`vigil.cases.queue.rank_day`, SQL) and verdict
(:func:`vigil.decisions.labels.write_verdict`) run on the same days as the evaluation's simulated
investigator (:func:`vigil.feedback.investigator.review_round`, daily rounds): the same cards
each day, the same transactions labelled with the same verdicts and terminal marks, and each
day read again at the end the same figures (cards reviewed, frauds found). The served
analyst is an oracle (the true labels), as the simulated one, and marks the terminals of the
compromised-terminal frauds (``compromised_transaction_ids``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Connection, Engine

from conftest import migrated_pg_engine
from storage_support import prediction_record
from vigil.cases import CaseQueue, card_case, day_queue
from vigil.cases.queue import rank_day
from vigil.config import CasesConfig
from vigil.data import schema
from vigil.decisions.labels import CaseVerdict, write_verdict
from vigil.features.verdicts import REVIEWED_AT, TERMINAL_COMPROMISED
from vigil.feedback.investigator import (
    COMPROMISED_TERMINAL_SCENARIO,
    ReviewPolicy,
    ReviewState,
    blocked_cards,
    review_round,
    review_scored_period,
)
from vigil.storage import LabelRecord, fetch_labels, insert_labels, insert_prediction_records
from vigil.storage.cases import VerdictRecord, insert_verdicts

pytestmark = pytest.mark.integration
DELAY = 7  # features.label_delay_days
FIRST, LAST = datetime(2018, 9, 1), datetime(2018, 9, 30)  # the world's days
CONFIG = CasesConfig(review_budget=6)  # block 14 days, look-back 7 days: the defaults


def world(seed: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    """30 days of 100 cards at 25 terminals, 2 % fraud of the generator's 3 scenarios, and
    scores."""
    rng = np.random.default_rng(seed)
    count = 30 * 120
    micros = rng.integers(1, 30 * 86_400 * 10**6, count)  # never at a midnight
    cards = rng.integers(0, 100, count)
    fraud = (rng.random(count) < 0.02).astype("int8")
    frame = pd.DataFrame(
        {
            schema.TRANSACTION_ID: np.arange(1, count + 1),
            schema.TX_DATETIME: pd.Timestamp(FIRST) + pd.to_timedelta(micros, unit="us"),
            schema.CUSTOMER_ID: cards,
            schema.TERMINAL_ID: rng.integers(0, 25, count),
            schema.TX_AMOUNT: rng.gamma(2.0, 30.0, count).round(2),
            schema.TX_FRAUD: fraud,
            schema.TX_FRAUD_SCENARIO: np.where(fraud == 1, rng.integers(1, 4, count), 0),
        }
    )
    frame = frame.sort_values(schema.TX_DATETIME, ignore_index=True)
    # frauds score higher, as a model's would: the queue then finds some, and blocks follow
    scores = np.clip(rng.beta(1.0, 6.0, count) + 0.4 * frame[schema.TX_FRAUD], 0.0, 1.0)
    return frame, scores.to_numpy()


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    with migrated_pg_engine(postgres_url, "vigil_rule") as db:
        yield db


def store_world(connection: Connection, frame: pd.DataFrame, scores: np.ndarray) -> None:
    insert_prediction_records(
        connection,
        [
            prediction_record(
                int(row.transaction_id),
                tx_datetime=row.tx_datetime.to_pydatetime(),
                customer_id=int(row.customer_id),
                terminal_id=int(row.terminal_id),
                tx_amount=float(row.tx_amount),
                score=float(score),
            )
            for row, score in zip(frame.itertuples(), scores, strict=True)
        ],
    )


def store_log(connection: Connection, log: pd.DataFrame) -> None:
    """A verdict log as the served path keeps it: verdict rows, and labels at review time;
    each verdict's case day is the day of its review round (which ends at ``reviewed_at``)."""
    records = [
        VerdictRecord(
            transaction_id=int(row.transaction_id),
            customer_id=int(row.customer_id),
            terminal_id=int(row.terminal_id),
            tx_datetime=pd.Timestamp(row.tx_datetime).to_pydatetime(),
            is_fraud=bool(row.tx_fraud),
            terminal_compromised=bool(row.terminal_compromised),
            reviewed_at=pd.Timestamp(row.reviewed_at).to_pydatetime(),
            analyst="past",
            case_day=(pd.Timestamp(row.reviewed_at) - pd.Timedelta(1, "us")).date(),
        )
        for row in log.itertuples()
    ]
    insert_verdicts(connection, records)
    insert_labels(
        connection, [LabelRecord(r.transaction_id, int(r.is_fraud), r.reviewed_at) for r in records]
    )


def arrive_labels(
    connection: Connection, frame: pd.DataFrame, after: datetime, until: datetime
) -> None:
    """The delayed labels due in ``(after, until]`` (a transaction with a verdict keeps its
    verdict's label: the first label stays)."""
    due = frame[schema.TX_DATETIME] + pd.Timedelta(days=DELAY)
    arrived = frame[(due > after) & (due <= until)]
    insert_labels(
        connection,
        [
            LabelRecord(int(tid), int(fraud), (when + pd.Timedelta(days=DELAY)).to_pydatetime())
            for tid, fraud, when in zip(
                arrived[schema.TRANSACTION_ID],
                arrived[schema.TX_FRAUD],
                arrived[schema.TX_DATETIME],
                strict=True,
            )
        ],
    )


def served_review(
    connection: Connection, frame: pd.DataFrame, day: datetime
) -> tuple[list[int], pd.DataFrame]:
    """The served queue of ``day`` and an oracle analyst's verdicts on its open cards at the
    day's end: (the queue's cards, the verdict rows written)."""
    ranked = rank_day(connection, CONFIG, day.date(), CONFIG.review_budget, DELAY)
    end = day + timedelta(days=1)
    since = end - timedelta(days=CONFIG.lookback_days)
    times = frame[schema.TX_DATETIME]
    written: list[VerdictRecord] = []
    for card, _ in ranked:
        mine = frame[(frame[schema.CUSTOMER_ID] == card) & (times >= since) & (times < end)]
        frauds = mine[mine[schema.TX_FRAUD] == 1]
        compromised = frauds[frauds[schema.TX_FRAUD_SCENARIO] == COMPROMISED_TERMINAL_SCENARIO]
        verdict = CaseVerdict(
            customer_id=card,
            day=day.date(),
            fraud=not frauds.empty,
            analyst="oracle",
            terminal_compromised=not compromised.empty,
            fraud_transaction_ids=frozenset(frauds[schema.TRANSACTION_ID].tolist()) or None,
            reviewed_at=end,
            compromised_transaction_ids=frozenset(compromised[schema.TRANSACTION_ID].tolist())
            or None,
        )
        written += write_verdict(connection, verdict, CONFIG.lookback_days).stored
    rows = pd.DataFrame(
        [
            (r.transaction_id, r.customer_id, int(r.is_fraud), int(r.terminal_compromised))
            for r in written
        ],
        columns=[schema.TRANSACTION_ID, schema.CUSTOMER_ID, schema.TX_FRAUD, TERMINAL_COMPROMISED],
    )
    return [card for card, _ in ranked], rows


def _verdict_rows(log: pd.DataFrame) -> list[tuple[int, ...]]:
    """(transaction, card, fraud, terminal compromised) of each verdict, sorted."""
    columns = [schema.TRANSACTION_ID, schema.CUSTOMER_ID, schema.TX_FRAUD, TERMINAL_COMPROMISED]
    return sorted(tuple(int(v) for v in row) for row in log[columns].to_numpy())


def test_the_served_queue_and_verdicts_follow_the_simulated_investigator(engine: Engine) -> None:
    frame, scores = world()
    policy = ReviewPolicy.of(CONFIG)
    assert (policy.cards_per_day, policy.block_days, policy.lookback_days) == (6, 14, 7)
    days = [LAST - timedelta(days=back) for back in (4, 3, 2, 1, 0)]
    # the past both sides start from: the investigator's reviews up to the first compared day
    past = frame[schema.TX_DATETIME] < days[0]
    state = review_scored_period(frame[past], scores[past.to_numpy()], policy, DELAY, days[0])
    assert (state.log[schema.TX_FRAUD] == 1).any()
    with engine.begin() as connection:
        store_world(connection, frame, scores)
        store_log(connection, state.log)
        arrive_labels(connection, frame, datetime.min, days[0])
    compared = blocked_seen = earlier = marked = 0
    queues: dict[datetime, list[int]] = {}
    times = frame[schema.TX_DATETIME]
    for day in days:
        start, end = pd.Timestamp(day), pd.Timestamp(day + timedelta(days=1))
        blocked = blocked_cards(frame, state, start, DELAY, policy.block_days)
        today = ((times >= start) & (times < end)).to_numpy()
        before = len(state.log)
        review_round(frame, frame[today], scores[today], state, policy, (start, end), DELAY)
        simulated = state.log.iloc[before:]
        assert (simulated[REVIEWED_AT] == end).all()
        with engine.begin() as connection:
            arrive_labels(connection, frame, day, day + timedelta(days=1))  # by the review
            cards, served = served_review(connection, frame, day)
            labels = fetch_labels(connection, served[schema.TRANSACTION_ID].tolist())
        assert sorted(cards) == sorted(set(simulated[schema.CUSTOMER_ID])), day
        queues[day] = cards
        assert _verdict_rows(served) == _verdict_rows(simulated), day
        assert labels == dict(
            zip(served[schema.TRANSACTION_ID], served[schema.TX_FRAUD], strict=True)
        )
        day_cards = set(frame.loc[today, schema.CUSTOMER_ID])
        blocked_seen += len(blocked & day_cards)
        compared += len(cards)
        earlier += int((simulated[schema.TX_DATETIME] < start).sum())
        marked += int(simulated[TERMINAL_COMPROMISED].sum())
    # each day read again after the later days' reviews is the day worked: its queue, its
    # cases' statuses and its summary (the investigator's cards and frauds found that day),
    # though their look-backs labelled transactions of that day of cards outside its queue
    log = state.log
    late = {
        day: set(
            log.loc[
                (log[schema.TX_DATETIME] >= day)
                & (log[schema.TX_DATETIME] < day + timedelta(days=1))
                & (log[REVIEWED_AT] > day + timedelta(days=1))
                & ~log[schema.CUSTOMER_ID].isin(queues[day]),
                schema.CUSTOMER_ID,
            ]
        )
        for day in days
    }
    with engine.connect() as connection:
        for day in days:
            ranked = rank_day(connection, CONFIG, day.date(), CONFIG.review_budget, DELAY)
            assert [card for card, _ in ranked] == queues[day], day
            queue = day_queue(connection, CONFIG, day.date(), CONFIG.review_budget, ranked)
            assert (queue.reviewed, queue.frauds) == state.queue[pd.Timestamp(day)], day
            assert {case.status for case in queue.cases} == {"reviewed"}, day
            for card in late[day]:  # not reviewed that day: open, without a verdict
                case = card_case(connection, CONFIG, card, day.date(), ranked)
                assert (case.status, case.verdict) == ("open", None), (day, card)
    # the comparison covered what it is about: full queues, blocked cards with payments that
    # day, look-back transactions labelled (of a past queue's day too), terminals marked
    assert compared == len(days) * CONFIG.review_budget
    assert blocked_seen > 0 and earlier > 0 and marked > 0, (blocked_seen, earlier, marked)
    assert sum(len(cards) for cards in late.values()) > 0
    assert sum(state.queue[pd.Timestamp(day)][1] for day in days) > 0  # frauds found


DAY = datetime(2018, 9, 30)


def _at(days: float) -> datetime:
    return DAY + timedelta(days=days)


# card -> (its earlier fraud's time, how it became known, when): see the test below
EARLIER = {
    1: (_at(-21.5), "verdict", _at(-13)),  # a fraud verdict 13 days ago: blocked
    2: (_at(-21.5), "verdict", _at(-15)),  # 15 days ago (label due 14.5 days ago): open
    3: (_at(-15.5), "verdict", _at(-15)),  # 15 days ago, but its delayed label came 8.5 ago
    4: (_at(-10), "label", _at(-3)),  # a delayed fraud label arrived 3 days ago: blocked
    5: (_at(-7 + 1 / 12), "label", _at(1 / 12)),  # arrives at 02:00 today: open all day
    6: (_at(-2.5), "legit", _at(-2)),  # a legitimate verdict: open
    7: (_at(-21.5), "label", _at(-14.5)),  # a fraud label 14.5 days ago: open
}


def test_blocked_cards_served_and_simulated(engine: Engine) -> None:
    rows, log, labels = [], [], []
    for card, (when, how, known) in EARLIER.items():
        rows.append((card * 10, when, card, 0.2, int(how != "legit")))
        rows.append((card * 10 + 1, _at(0.5), card, 0.1 * card, 0))  # the card's payment today
        if how == "label":
            labels.append(LabelRecord(card * 10, 1, known))
        else:
            log.append((card * 10, card, card, when, int(how == "verdict"), 0, known))
    frame = pd.DataFrame(
        rows,
        columns=[schema.TRANSACTION_ID, schema.TX_DATETIME, schema.CUSTOMER_ID, "score", "fraud"],
    ).assign(**{schema.TERMINAL_ID: 1, schema.TX_AMOUNT: 5.0})
    frame = frame.rename(columns={"fraud": schema.TX_FRAUD})
    columns = [schema.TRANSACTION_ID, schema.CUSTOMER_ID, schema.TERMINAL_ID, schema.TX_DATETIME]
    state = ReviewState(
        log=pd.DataFrame(
            log, columns=[*columns, schema.TX_FRAUD, TERMINAL_COMPROMISED, REVIEWED_AT]
        )
    )
    simulated = blocked_cards(frame, state, pd.Timestamp(DAY), DELAY, CONFIG.block_days)
    with engine.begin() as connection:
        store_world(connection, frame, frame["score"].to_numpy())
        store_log(connection, state.log)
        insert_labels(connection, labels)
        ranked = rank_day(
            connection, CONFIG.model_copy(update={"review_budget": 10}), DAY.date(), 10, DELAY
        )
    assert simulated == {1, 3, 4}
    assert [card for card, _ in ranked] == [7, 6, 5, 2]  # by today's score; 1, 3, 4 left out


def test_a_card_reviewed_today_keeps_its_place_and_is_not_offered_again(engine: Engine) -> None:
    scores = {10: 0.9, 11: 0.8, 12: 0.7, 13: 0.6, 14: 0.5}
    with engine.begin() as connection:
        insert_prediction_records(
            connection,
            [
                prediction_record(card, tx_datetime=_at(0.25), customer_id=card, score=score)
                for card, score in scores.items()
            ],
        )
        config = CONFIG.model_copy(update={"review_budget": 3})
        assert [c for c, _ in rank_day(connection, config, DAY.date(), 3, DELAY)] == [10, 11, 12]
        # card 13, reviewed today (outside the queue: an analyst looked it up), and card 10
        # found fraud today (blocked from tomorrow, not today)
        for card, fraud in ((13, False), (10, True)):
            write_verdict(
                connection, CaseVerdict(card, DAY.date(), fraud, "ana", reviewed_at=_at(0.5)), 7
            )
        queue = rank_day(connection, config, DAY.date(), 3, DELAY)
        assert queue == [(10, 0.9), (11, 0.8), (13, 0.6)]  # 12's place went to 13's review
        # a new payment of card 13 after its verdict: it keeps its one place
        insert_prediction_records(
            connection, [prediction_record(99, tx_datetime=_at(0.75), customer_id=13, score=0.95)]
        )
        again = rank_day(connection, config, DAY.date(), 3, DELAY)
        # tomorrow card 10, found fraud today, is blocked; card 13 (legit) is open again
        insert_prediction_records(
            connection,
            [
                prediction_record(100 + card, tx_datetime=_at(1.25), customer_id=card, score=0.5)
                for card in (10, 13)
            ],
        )
        tomorrow = rank_day(connection, config, (DAY + timedelta(days=1)).date(), 3, DELAY)
    assert again == [(13, 0.95), (10, 0.9), (11, 0.8)]
    assert tomorrow == [(13, 0.5)]


def test_a_past_days_queue_does_not_change_after_a_later_look_back_verdict(
    engine: Engine,
) -> None:
    """A verdict given for a day also labels the card's look-back transactions of the days
    before: the card was not reviewed on those days' queues, which stay as they were worked.
    A verdict given later for a past day (an analyst catching up on it) is a review of that
    day's queue and takes a place there."""
    config = CONFIG.model_copy(update={"review_budget": 2})
    day, tomorrow = DAY.date(), (DAY + timedelta(days=1)).date()
    scores = {20: 0.9, 21: 0.8, 22: 0.7, 23: 0.6}
    with engine.begin() as connection:
        insert_prediction_records(
            connection,
            [
                prediction_record(card, tx_datetime=_at(0.25), customer_id=card, score=score)
                for card, score in scores.items()
            ]
            + [prediction_record(122, tx_datetime=_at(1.25), customer_id=22, score=0.5)],
        )
        worked = rank_day(connection, config, day, 2, DELAY)
        for card in (20, 21):
            write_verdict(connection, CaseVerdict(card, day, False, "ana", reviewed_at=_at(0.5)), 7)
        assert worked == [(20, 0.9), (21, 0.8)]
        assert rank_day(connection, config, tomorrow, 2, DELAY) == [(22, 0.5)]
        # tomorrow's verdict on card 22 labels its payment of today too (the look-back)
        outcome = write_verdict(
            connection, CaseVerdict(22, tomorrow, False, "ana", reviewed_at=_at(1.5)), 7
        )
        assert sorted(r.transaction_id for r in outcome.stored) == [22, 122]
        assert {r.case_day for r in outcome.stored} == {tomorrow}
        again = rank_day(connection, config, day, 2, DELAY)
        next_day = rank_day(connection, config, tomorrow, 2, DELAY)
        # card 23, reviewed for today's queue the day after (looked up outside the queue)
        write_verdict(connection, CaseVerdict(23, day, False, "ana", reviewed_at=_at(1.75)), 7)
        caught_up = rank_day(connection, config, day, 2, DELAY)
    assert again == worked
    assert next_day == [(22, 0.5)]
    assert caught_up == [(20, 0.9), (21, 0.8), (23, 0.6)]


def _seen(queue: CaseQueue) -> tuple[object, ...]:
    """What a day's queue tells of its review: each case's status and verdict, the summary."""
    statuses = {case.customer_id: (case.status, case.verdict) for case in queue.cases}
    return statuses, queue.reviewed, queue.frauds, queue.precision


def test_a_past_days_statuses_and_summary_do_not_change_after_a_later_look_back_verdict(
    engine: Engine,
) -> None:
    """A later day's verdict labels the card's transactions of a past day (its look-back): the
    past day's cases and summary count only the verdicts given for that day's cases, so the
    day read again is the day as it was worked."""
    config = CONFIG.model_copy(update={"review_budget": 3})
    day, tomorrow = DAY.date(), (DAY + timedelta(days=1)).date()
    with engine.begin() as connection:
        insert_prediction_records(
            connection,
            [
                prediction_record(30, tx_datetime=_at(0.25), customer_id=30, score=0.9),
                prediction_record(31, tx_datetime=_at(0.25), customer_id=31, score=0.8),
                prediction_record(32, tx_datetime=_at(0.25), customer_id=32, score=0.7),
            ],
        )
        # today: cards 30 and 32 reviewed legit at noon; card 32 pays again after it (132)
        for card in (30, 32):
            write_verdict(connection, CaseVerdict(card, day, False, "ana", reviewed_at=_at(0.5)), 7)
        insert_prediction_records(
            connection,
            [prediction_record(132, tx_datetime=_at(0.75), customer_id=32, score=0.1)]
            + [
                prediction_record(200 + card, tx_datetime=_at(1.25), customer_id=card, score=0.5)
                for card in (31, 32)
            ],
        )
        ranked = rank_day(connection, config, day, 3, DELAY)
        worked = day_queue(connection, config, day, 3, ranked)
        # tomorrow's fraud verdicts on cards 31 and 32 label today's payments 31 and 132 too
        for card in (31, 32):
            verdict = CaseVerdict(card, tomorrow, True, "bob", reviewed_at=_at(1.5))
            write_verdict(connection, verdict, 7)
        again = day_queue(connection, config, day, 3, rank_day(connection, config, day, 3, DELAY))
        opened = card_case(connection, config, 31, day, ranked)
        next_day = day_queue(
            connection, config, tomorrow, 3, rank_day(connection, config, tomorrow, 3, DELAY)
        )

    # card 32's payment 132 came after its review: its case was open at the day's end
    assert _seen(worked) == (
        {30: ("reviewed", "legit"), 31: ("open", None), 32: ("open", "legit")},
        1,
        0,
        0.0,
    )
    assert _seen(again) == _seen(worked)
    # card 31's payment of today shows its verdict, given for tomorrow's case
    assert (opened.status, opened.verdict) == ("open", None)
    assert [(t.verdict, t.case_day) for t in opened.transactions] == [("fraud", tomorrow)]
    assert _seen(next_day)[1:] == (2, 2, 1.0)
