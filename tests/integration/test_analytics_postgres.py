"""The History page's card filter on PostgreSQL: the card's rows come through an index."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql

from conftest import private_pg_schema
from storage_support import prediction_record
from vigil.storage import create_db_engine, insert_prediction_records, upgrade_database
from vigil.storage.analytics import HistoryFilter, history_query, prediction_history
from vigil.storage.case_copy import sync_stored_days

pytestmark = pytest.mark.integration

CARDS, ROWS = 500, 20_000


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    """20,000 scored transactions of 500 cards over 5 days, the queue's copy up to date."""
    with private_pg_schema(postgres_url, "vigil_history") as url:
        upgrade_database(url)
        db = create_db_engine(url)
        start = datetime(2018, 4, 1)
        records = [
            prediction_record(
                tid,
                tx_datetime=start + timedelta(seconds=tid * 20),
                customer_id=tid % CARDS,
                terminal_id=tid % 97,
                tx_amount=float(tid % 300),
                score=(tid % 100) / 100,
            )
            for tid in range(ROWS)
        ]
        with db.begin() as connection:
            insert_prediction_records(connection, records)
        with db.begin() as connection:
            sync_stored_days(connection)
            connection.exec_driver_sql("ANALYZE")
        yield db
        db.dispose()


def test_a_card_s_history_is_read_by_the_card_index(engine: Engine) -> None:
    where = HistoryFilter(customer_id=7, limit=10)
    query = history_query(where)
    sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    with engine.connect() as connection:
        plan = "\n".join(connection.exec_driver_sql("EXPLAIN " + sql).scalars())
        frame = prediction_history(connection, where)
    assert "ix_case_transactions_customer_day_amount" in plan, plan
    assert "Seq Scan on transactions" not in plan, plan
    expected = sorted((tid for tid in range(ROWS) if tid % CARDS == 7), reverse=True)[:10]
    assert list(frame["transaction_id"]) == expected
    assert set(frame["customer_id"]) == {7}
