"""The case queue and the verdict log on real PostgreSQL: the same answers as on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime

import pytest
from sqlalchemy import Engine, delete, select

from conftest import private_pg_schema
from storage_support import check_verdict_case_day_migration, prediction_record
from vigil.cases import card_case, day_queue
from vigil.cases.queue import rank_day, today
from vigil.config import CasesConfig
from vigil.decisions.labels import CaseVerdict, VerdictConflict, write_verdict
from vigil.storage import (
    LabelRecord,
    PredictionRecord,
    create_db_engine,
    fetch_labels,
    insert_labels,
    insert_prediction_records,
    upgrade_database,
)
from vigil.storage.case_copy import sync_days
from vigil.storage.cases import fetch_verdicts
from vigil.storage.tables import case_days, transactions

pytestmark = pytest.mark.integration
DAY = date(2018, 9, 30)


def scored(tid: int, card: int, hour: int, score: float, day: int = 30) -> PredictionRecord:
    return prediction_record(
        tid,
        tx_datetime=datetime(2018, 9, day, hour),
        customer_id=card,
        terminal_id=100 + card,
        tx_amount=10.0 * tid,
        score=score,
        reason_codes=["tx_amount", "terminal_id_risk_7day_window"],
        latency_ms=0.5,
        source="stream",
    )


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    with private_pg_schema(postgres_url, "vigil_cases") as url:
        upgrade_database(url)
        db = create_db_engine(url)
        records = [
            scored(1, 7, 8, 0.9),
            scored(2, 7, 9, 0.2),
            scored(3, 8, 10, 0.6),
            scored(4, 9, 11, 0.1),
            scored(5, 7, 8, 0.1, day=20),  # card 7's habit
            scored(6, 9, 8, 0.3, day=23),  # card 9: before the look-back of DAY ([09-24, 09-30))
            scored(7, 9, 0, 0.3, day=24),  # inside it, at its first moment
            scored(8, 9, 9, 0.3, day=26),  # inside it, labelled before the verdict
        ]
        with db.begin() as connection:
            insert_prediction_records(connection, records)
        yield db
        db.dispose()


def test_queue_and_verdicts_on_postgres(engine: Engine) -> None:
    config = CasesConfig(review_budget=2)
    with engine.connect() as connection:
        assert today(connection) == DAY
        ranked = rank_day(connection, config, DAY, 2, 7)
        queue = day_queue(connection, config, DAY, 2, ranked)
    assert (queue.day, queue.size) == (DAY, 2)
    assert [(c.customer_id, c.top_score) for c in queue.cases] == [(7, 0.9), (8, 0.6)]
    first = queue.cases[0]
    assert first.transactions[0].reason_codes == ["tx_amount", "terminal_id_risk_7day_window"]
    assert first.habit_mean == 50.0 and first.transactions[0].amount_vs_habit == 0.2
    verdict = CaseVerdict(customer_id=7, day=None, fraud=True, analyst="ana")
    with engine.begin() as connection:
        outcome = write_verdict(connection, verdict, config.lookback_days)
    assert [r.transaction_id for r in outcome.stored] == [1, 2]
    with engine.begin() as connection:
        assert write_verdict(connection, verdict, config.lookback_days).repeated
    with pytest.raises(VerdictConflict), engine.begin() as connection:
        write_verdict(connection, CaseVerdict(7, None, False, "bob"), config.lookback_days)
    with engine.connect() as connection:
        assert fetch_labels(connection, [1, 2, 3]) == {1: 1, 2: 1}
        assert [v["reviewed_at"] for v in fetch_verdicts(connection)] == [
            datetime(2018, 9, 30, 11)
        ] * 2
        case = card_case(connection, config, 7, DAY, ranked)
        queue = day_queue(connection, config, DAY, 2, ranked, status="open")
    assert (case.status, case.verdict, case.rank) == ("reviewed", "fraud", 1)
    assert [c.customer_id for c in queue.cases] == [8]
    assert (queue.reviewed, queue.frauds, queue.precision) == (1, 1, 1.0)


def test_a_verdict_labels_the_unlabelled_look_back_on_postgres(engine: Engine) -> None:
    config = CasesConfig()  # look-back 7 days: [09-24, 09-30) for DAY
    with engine.begin() as connection:
        insert_labels(connection, [LabelRecord(8, 0, datetime(2018, 9, 27))])
    with engine.connect() as connection:
        case = card_case(connection, config, 9, DAY, rank_day(connection, config, DAY, 2, 7))
    assert [t.transaction_id for t in case.transactions] == [4]
    assert [t.transaction_id for t in case.lookback] == [7]
    with engine.begin() as connection:
        outcome = write_verdict(connection, CaseVerdict(9, DAY, True, "ana"), config.lookback_days)
    assert sorted(r.transaction_id for r in outcome.stored) == [4, 7]
    assert {r.transaction_id: r.is_fraud for r in outcome.logged} == {4: True, 7: True}
    with engine.connect() as connection:
        assert fetch_labels(connection, [4, 6, 7, 8]) == {4: 1, 7: 1, 8: 0}
    with engine.begin() as connection:
        again = write_verdict(connection, CaseVerdict(9, DAY, True, "ana"), config.lookback_days)
    assert again.repeated and {r.transaction_id for r in again.logged} == {4, 7}


def test_the_queue_copy_follows_transactions_on_postgres(engine: Engine) -> None:
    with engine.begin() as connection:
        assert sync_days(connection, [DAY]) == 4
        insert_prediction_records(connection, [scored(9, 7, 12, 0.1)])
        assert sync_days(connection, [DAY]) == 0  # checked before: kept until rechecked
        assert sync_days(connection, [DAY], recheck=[DAY]) == 1
        assert sync_days(connection, [DAY], recheck=[DAY]) == 0  # counts agree
        connection.execute(delete(transactions).where(transactions.c.transaction_id == 9))
        assert sync_days(connection, [DAY], recheck=[DAY]) == 1
        counts = dict(connection.execute(select(case_days.c.day, case_days.c.transactions)).all())
    assert counts == {DAY: 4}


def test_every_card_reviewed_that_day_keeps_its_place_beyond_the_budget(engine: Engine) -> None:
    """More cards reviewed that day than the budget (looked up outside the queue): the queue
    shows all of them, none dropped to fit the budget, and no open card is added."""
    config = CasesConfig(review_budget=1)
    with engine.begin() as connection:
        assert rank_day(connection, config, DAY, 1, 7) == [(7, 0.9)]
        for card in (8, 9):
            write_verdict(connection, CaseVerdict(card, DAY, False, "ana"), config.lookback_days)
        assert rank_day(connection, config, DAY, 1, 7) == [(8, 0.6), (9, 0.1)]


def test_migration_0008_gives_stored_verdicts_their_case_day_on_postgres(postgres_url: str) -> None:
    with private_pg_schema(postgres_url, "vigil_0008") as url:
        check_verdict_case_day_migration(url)
