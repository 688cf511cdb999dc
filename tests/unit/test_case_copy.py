"""The case queue's copy of transactions (SQLite): no card or terminal index on the hot table,
days copied once and rechecked on demand, migration 0005 both ways."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, Engine, delete, inspect, select

from storage_support import prediction_record
from vigil.storage import PredictionRecord, create_db_engine, insert_prediction_records
from vigil.storage import upgrade_database as upgrade
from vigil.storage.case_copy import sync_days
from vigil.storage.cases import card_habits, card_transactions
from vigil.storage.migrate import alembic_config
from vigil.storage.tables import case_days, transactions

DAY = date(2018, 9, 30)
QUEUE_INDEXES = {"customer_day_amount", "terminal_day_id"}


def scored(tid: int, card: int, when: datetime, amount: float = 10.0) -> PredictionRecord:
    return prediction_record(
        tid,
        tx_datetime=when,
        customer_id=card,
        terminal_id=100 + card,
        tx_amount=amount,
        score=0.5,
        latency_ms=1.0,
        source="stream",
    )


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'vigil.db'}"
    upgrade(url)
    engine = create_db_engine(url)
    with engine.begin() as connection:
        insert_prediction_records(
            connection,
            [scored(1, 7, datetime(2018, 9, 30, 8)), scored(2, 8, datetime(2018, 9, 30, 9))],
        )
    yield engine
    engine.dispose()


def _index_names(engine: Engine, table: str) -> set[str]:
    return {str(index["name"]) for index in inspect(engine).get_indexes(table)}


def _card_ids(connection: Connection, card: int) -> list[int]:
    rows = card_transactions(connection, [card], datetime(2018, 9, 1), datetime(2018, 10, 1))
    return [int(row["transaction_id"]) for row in rows]


def test_the_hot_table_carries_no_card_or_terminal_index(engine: Engine) -> None:
    # every scored request inserts into transactions: only the event-time index is paid there
    assert _index_names(engine, "transactions") == {"ix_transactions_tx_datetime"}
    assert _index_names(engine, "case_transactions") == {
        f"ix_case_transactions_{name}" for name in QUEUE_INDEXES
    }


def test_a_day_is_copied_once_then_only_when_rechecked(engine: Engine) -> None:
    with engine.begin() as connection:
        assert _card_ids(connection, 7) == []  # nothing read yet
        assert sync_days(connection, [DAY]) == 2
        assert _card_ids(connection, 7) == [1]
        insert_prediction_records(connection, [scored(3, 7, datetime(2018, 9, 30, 10))])
        assert sync_days(connection, [DAY]) == 0  # checked before: kept as it was
        assert _card_ids(connection, 7) == [1]
        assert sync_days(connection, [DAY], recheck=[DAY]) == 1
        assert _card_ids(connection, 7) == [1, 3]
        assert sync_days(connection, [DAY], recheck=[DAY]) == 0  # counts agree: nothing to do
        counts = dict(connection.execute(select(case_days.c.day, case_days.c.transactions)).all())
    assert counts == {DAY: 3}


def test_rows_gone_from_transactions_leave_the_copy_when_rechecked(engine: Engine) -> None:
    with engine.begin() as connection:
        sync_days(connection, [DAY])
        connection.execute(delete(transactions).where(transactions.c.transaction_id == 2))
        assert sync_days(connection, [DAY], recheck=[DAY]) == 1
        assert _card_ids(connection, 8) == []
        assert _card_ids(connection, 7) == [1]


def test_migration_0005_copies_the_stored_rows_and_downgrades_to_0004(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0004")
    engine = create_db_engine(url)
    try:
        with engine.begin() as connection:
            rows = [_row(tid, day) for tid, day in ((1, 29), (2, 30), (3, 30))]
            connection.execute(transactions.insert(), rows)
        old_indexes = {f"ix_transactions_{name}" for name in QUEUE_INDEXES}
        assert old_indexes <= _index_names(engine, "transactions")
        upgrade(url)
        assert _index_names(engine, "transactions") == {"ix_transactions_tx_datetime"}
        with engine.connect() as connection:
            counts = dict(
                connection.execute(select(case_days.c.day, case_days.c.transactions)).all()
            )
            habit = card_habits(connection, [7], datetime(2018, 9, 1), datetime(2018, 10, 1))
        assert counts == {date(2018, 9, 29): 1, DAY: 2}
        assert habit == {7: (20.0, 3)}
        command.downgrade(alembic_config(url), "0004")
        assert old_indexes <= _index_names(engine, "transactions")
        assert "case_transactions" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def _row(tid: int, day: int) -> dict[str, object]:
    """A transactions row as revision 0004 stores it (card 7, amount 10 x id)."""
    return {
        "transaction_id": tid,
        "tx_datetime": datetime(2018, 9, day),
        "customer_id": 7,
        "terminal_id": 107,
        "tx_amount": 10.0 * tid,
        "extra": None,
        "received_at": datetime(2026, 12, 6),
    }
