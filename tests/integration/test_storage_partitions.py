"""Day-partitioned PostgreSQL storage: the migration from 0001, routing, ids, retention."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Connection, Engine, text
from typer.testing import CliRunner

from conftest import private_pg_schema
from storage_support import prediction_record
from vigil.cli import app
from vigil.features.warmup import _labels_received_query, received_transactions
from vigil.storage import (
    GroupCommitWriter,
    PredictionRecord,
    create_db_engine,
    insert_prediction_records,
    upgrade_database,
)
from vigil.storage.case_copy import sync_days
from vigil.storage.partitions import (
    day_partitions,
    ensure_partitions,
    is_partitioned,
    maintain_partitions,
    partition_name,
    utc_today,
)
from vigil.storage.sinks import SELECT_RECORDS_SQL, PsycopgSink

pytestmark = pytest.mark.integration

# Rows written by today's (0001) schema, spanning a UTC midnight; a prediction can be made
# just after the midnight its transaction was received before.
OLD_TRANSACTIONS = """INSERT INTO transactions VALUES
 (1, '2018-04-01 10:00', 11, 21, 5.5, 'null', '2026-11-20 23:59:59.9+00'),
 (2, '2018-04-01 10:01', 12, 22, 7.25, '{"channel": "web"}', '2026-11-21 00:00:01+00'),
 (3, '2018-04-02 09:00', 13, 23, 1.0, 'null', '2026-11-21 12:00:00+00')"""
OLD_PREDICTIONS = """INSERT INTO predictions VALUES
 (1, 0.1, 0, 0.5, '["tx_amount"]', 'm-1', 1.0, NULL, NULL, 'api', '2026-11-21 00:00:00.1+00'),
 (2, 0.9, 1, 0.5, '[]', 'm-1', 2.0, 0.8, 'm-2', 'stream', '2026-11-21 00:00:01.5+00'),
 (3, 0.2, 0, 0.5, '[]', 'm-1', 3.0, NULL, NULL, 'batch', '2026-11-21 12:00:00.5+00')"""


@pytest.fixture
def url_at_0001(postgres_url: str) -> Iterator[str]:
    """A private schema at today's revision 0001, holding a few rows."""
    with private_pg_schema(postgres_url, "vigil_partitions") as url:
        upgrade_database(url, "0001")
        engine = create_db_engine(url)
        with engine.begin() as connection:
            connection.exec_driver_sql(OLD_TRANSACTIONS)
            connection.exec_driver_sql(OLD_PREDICTIONS)
        engine.dispose()
        yield url


@pytest.fixture
def engine(url_at_0001: str) -> Iterator[Engine]:
    """The schema upgraded to head."""
    upgrade_database(url_at_0001)
    engine = create_db_engine(url_at_0001)
    yield engine
    engine.dispose()


def rows_by_partition(connection: Connection, table: str) -> dict[int, str]:
    query = f"SELECT transaction_id, tableoid::regclass::text FROM {table}"
    return {int(tid): str(name) for tid, name in connection.execute(text(query))}


def test_migration_keeps_every_row_in_the_partition_of_its_day(engine: Engine) -> None:
    with engine.connect() as connection:
        assert is_partitioned(connection)
        assert rows_by_partition(connection, "transactions") == {
            1: "transactions_p20261120",
            2: "transactions_p20261121",
            3: "transactions_p20261121",
        }
        assert rows_by_partition(connection, "predictions") == {
            1: "predictions_p20261121",
            2: "predictions_p20261121",
            3: "predictions_p20261121",
        }
        stored = connection.execute(
            text(
                "SELECT t.transaction_id, t.tx_amount, t.extra::text, p.score, "
                "p.challenger_version, p.reason_codes::text, p.created_at "
                "FROM transactions t JOIN predictions p USING (transaction_id) "
                "ORDER BY transaction_id"
            )
        ).all()
        ids = connection.execute(text("SELECT transaction_id FROM transaction_ids")).scalars()
        days = set(day_partitions(connection, "transactions"))
    assert [tuple(r[:6]) for r in stored] == [
        (1, 5.5, "null", 0.1, None, '["tx_amount"]'),
        (2, 7.25, '{"channel": "web"}', 0.9, "m-2", "[]"),
        (3, 1.0, "null", 0.2, None, "[]"),
    ]
    assert stored[0][6] == datetime(2026, 11, 21, 0, 0, 0, 100_000, tzinfo=UTC)
    assert sorted(ids) == [1, 2, 3]
    today = utc_today()
    assert {today + timedelta(days=d) for d in range(8)} <= days


def record(transaction_id: int, received: datetime, score: float = 0.3) -> PredictionRecord:
    return prediction_record(
        transaction_id,
        tx_datetime=datetime(2018, 4, 3, 8),
        customer_id=5,
        terminal_id=6,
        tx_amount=9.0,
        score=score,
        label=0,
        model_version="m-3",
        received_at=received,
        created_at=received + timedelta(milliseconds=1),
    )


def test_group_commit_routes_by_day_and_keeps_ids_unique(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    now = datetime.now(UTC)
    stray = datetime(2030, 1, 1, 12, tzinfo=UTC)  # no partition yet: the default one

    async def write() -> None:
        writer = GroupCommitWriter(url, max_batch=8, connections=2)
        await writer.start()
        batch = [record(10, now), record(10, now, score=0.9), record(11, stray), record(2, now)]
        await writer.submit_many(batch)
        await writer.submit_many([record(11, now, score=0.7), record(12, now)])
        await writer.stop()

    asyncio.run(write())
    with engine.connect() as connection:
        placed = rows_by_partition(connection, "transactions")
        scores = dict(
            connection.execute(text("SELECT transaction_id, score FROM predictions")).all()
        )
    today = partition_name("transactions", now.date())
    assert placed == {
        1: "transactions_p20261120",
        2: "transactions_p20261121",  # a repeated id keeps its first rows and day
        3: "transactions_p20261121",
        10: today,
        11: "transactions_default",
        12: today,
    }
    assert scores == {1: 0.1, 2: 0.9, 3: 0.2, 10: 0.3, 11: 0.3, 12: 0.3}


def test_the_first_of_an_id_repeated_in_one_batch_is_stored_once(engine: Engine) -> None:
    now = datetime.now(UTC)
    later = replace(record(20, now + timedelta(seconds=1), score=0.9), created_at=now)
    with engine.begin() as connection:  # one statement: no split, no retry
        inserted = insert_prediction_records(connection, [record(20, now), later, record(21, now)])
    with engine.connect() as connection:
        stored = {
            table: connection.execute(
                text(f"SELECT count(*) FROM {table} WHERE transaction_id = 20")
            ).scalar_one()
            for table in ("transactions", "predictions")
        }
        score = connection.execute(
            text("SELECT score FROM predictions WHERE transaction_id = 20")
        ).scalar_one()
    assert inserted == {20, 21}
    assert stored == {"transactions": 1, "predictions": 1}
    assert score == 0.3


def test_a_stored_record_is_read_from_one_partition_of_each_table(engine: Engine) -> None:
    """The idempotency look-up (ADR 0016) probes ``transaction_ids`` then the partition of
    each id's day, however many days are stored; a record whose prediction was made on
    another day than its receipt (the migrated ids 1 and 2) is still found."""
    url = engine.url.render_as_string(hide_password=False)
    today = utc_today()
    days = [today - timedelta(days=d) for d in range(3)]
    with engine.begin() as connection:
        ensure_partitions(connection, days)
    stamped = [
        replace(record(20 + d, at), created_at=at)  # one clock read, as the pipeline stamps
        for d, at in enumerate(
            datetime(day.year, day.month, day.day, 9, tzinfo=UTC) for day in days
        )
    ]

    async def store_and_read() -> list[PredictionRecord]:
        sink = PsycopgSink(url)
        try:
            await sink.write(stamped)
            return await sink.lookup([20, 21, 22, 1, 2, 999])
        finally:
            await sink.close()

    found = {r.transaction_id: r for r in asyncio.run(store_and_read())}
    assert sorted(found) == [1, 2, 20, 21, 22]
    for written in stamped:
        read = found[written.transaction_id]
        assert (read.received_at, read.created_at, read.score) == (
            written.received_at,
            written.created_at,
            written.score,
        )
    assert found[2].model_version == "m-1" and found[2].created_at.day == 21
    with engine.connect() as connection:
        plan = "\n".join(
            connection.exec_driver_sql(
                "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + SELECT_RECORDS_SQL,
                {"ids": [20, 21, 22]},
            ).scalars()
        )
    for table in ("transactions", "predictions"):
        probed = [
            line
            for line in plan.splitlines()
            if f"Scan using {table}_" in line and "never executed" not in line
        ]
        assert len(probed) == 3, plan  # one partition per id, of the 8+ this table has


def copied_days(connection: Connection) -> dict[date, int]:
    """The case queue's copy: rows per event-time day (``case_days``)."""
    return dict(connection.execute(text("SELECT day, transactions FROM case_days")).all())


def test_maintenance_moves_stray_rows_and_drops_days_past_retention(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO transaction_ids VALUES (20, '2030-01-01 12:00+00');"
            "INSERT INTO transactions VALUES "
            "(20, '2018-04-01', 1, 2, 3.0, 'null', '2030-01-01 12:00+00')"
        )
    with engine.connect() as connection:  # migration 0005 copied the rows of 0001 for the queue
        assert copied_days(connection) == {date(2018, 4, 1): 2, date(2018, 4, 2): 1}
    report = maintain_partitions(engine, days_ahead=1, retention_days=10, today=date(2030, 1, 1))
    assert "transactions_p20300101" in report.created
    assert "transactions_p20300102" in report.created
    assert {"transactions_p20261120", "predictions_p20261121"} <= set(report.dropped)
    with engine.connect() as connection:
        assert rows_by_partition(connection, "transactions") == {20: "transactions_p20300101"}
        assert rows_by_partition(connection, "predictions") == {}
        ids = connection.execute(text("SELECT transaction_id FROM transaction_ids")).scalars()
        assert list(ids) == [20]
        # the case queue's copy forgets them too (20 was never copied: no queue read since)
        assert copied_days(connection) == {}
        assert connection.execute(text("SELECT count(*) FROM case_transactions")).scalar() == 0
        assert min(day_partitions(connection, "transactions")) >= date(2029, 12, 22)
    again = maintain_partitions(engine, days_ahead=1, retention_days=10, today=date(2030, 1, 1))
    assert again.created == [] and again.dropped == []


def test_retention_changes_only_the_copied_days_it_removed_rows_of(engine: Engine) -> None:
    """Retention removes the copies of the transactions it drops and subtracts them from their
    days' counts; the queue's other counts stay as its checks left them (nothing is rebuilt
    from the whole copy)."""
    checked_empty = date(2018, 4, 9)
    with engine.begin() as connection:
        sync_days(connection, [checked_empty])  # checked, nothing to copy: counted 0
        assert copied_days(connection) == {
            date(2018, 4, 1): 2,
            date(2018, 4, 2): 1,
            checked_empty: 0,
        }
    # the cutoff 2026-11-21 drops the day received 2026-11-20: id 1, of event day 2018-04-01
    maintain_partitions(engine, days_ahead=0, retention_days=1, today=date(2026, 11, 22))
    with engine.connect() as connection:
        assert copied_days(connection) == {
            date(2018, 4, 1): 1,
            date(2018, 4, 2): 1,
            checked_empty: 0,
        }
        copied = connection.execute(text("SELECT transaction_id FROM case_transactions"))
        assert sorted(copied.scalars()) == [2, 3]
    with engine.begin() as connection:  # the counts agree with transactions: nothing to redo
        days = [date(2018, 4, 1), date(2018, 4, 2)]
        assert sync_days(connection, days, recheck=days) == 0


def test_downgrade_returns_every_row_to_the_plain_tables(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    from alembic import command

    from vigil.storage.migrate import alembic_config

    command.downgrade(alembic_config(url), "0001")
    with engine.connect() as connection:
        assert not is_partitioned(connection)
        rows = connection.execute(text("SELECT transaction_id FROM predictions")).scalars()
        assert sorted(rows) == [1, 2, 3]
    upgrade_database(url)
    with engine.connect() as connection:
        assert rows_by_partition(connection, "transactions")[1] == "transactions_p20261120"


def _id_receipt_index_method(engine: Engine) -> str:
    query = (
        "SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relname = 'ix_transaction_ids_received_at' AND n.nspname = current_schema()"
    )
    with engine.connect() as connection:
        return str(connection.execute(text(query)).scalar_one())


def test_the_id_receipt_index_is_brin_from_0006_and_a_btree_before(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    from alembic import command

    from vigil.storage.migrate import alembic_config

    assert _id_receipt_index_method(engine) == "brin"
    command.downgrade(alembic_config(url), "0005")
    assert _id_receipt_index_method(engine) == "btree"
    upgrade_database(url)
    assert _id_receipt_index_method(engine) == "brin"


def test_the_labels_received_lately_come_with_their_transactions_from_their_partitions(
    engine: Engine,
) -> None:
    """The state recovery's tail re-warm: a label received after ``since`` brings its
    transaction, received days before, read from that transaction's partition alone."""
    url = engine.url.render_as_string(hide_password=False)
    since = datetime(2026, 11, 22, tzinfo=UTC)  # after every transaction was received
    with engine.begin() as connection:  # 1's label is received after since, 3's before
        connection.exec_driver_sql(
            "INSERT INTO labels VALUES (1, 1, '2018-04-08 10:00', '2026-11-23 00:00+00'), "
            "(3, 0, '2018-04-09 09:00', '2026-11-20 00:00+00')"
        )
        query = _labels_received_query(connection, since)
        sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
        plan = connection.exec_driver_sql(f"EXPLAIN ANALYZE {sql}").scalars().all()
    frame = received_transactions(url, since)
    assert frame[["transaction_id", "tx_fraud"]].values.tolist() == [[1, 1]]
    read = [line for line in plan if "on transactions_" in line and "never executed" not in line]
    assert len(read) == 1 and "transactions_p20261120" in read[0], "\n".join(plan)


def test_cli_maintain_reports_what_it_did(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(
        app, ["db", "maintain", "--set", f"storage.database_url={url}", "--keep-days", "3650"]
    )
    assert result.exit_code == 0, result.output
    assert "created" in result.output and "dropped 0 partitions" in result.output


def test_cli_maintain_on_sqlite_does_nothing(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/v.db"
    upgrade_database(url)
    result = CliRunner().invoke(app, ["db", "maintain", "--set", f"storage.database_url={url}"])
    assert result.exit_code == 0, result.output
    assert "nothing to do" in result.output


def test_dagster_maintenance_job_creates_partitions_ahead(engine: Engine) -> None:
    from vigil.config import build_settings
    from vigil.pipelines.maintenance import storage_maintenance
    from vigil.pipelines.resources import build_resources

    url = engine.url.render_as_string(hide_password=False)
    overrides = [("storage.database_url", url), ("storage.partition_days_ahead", "10")]
    settings = build_settings({}, overrides)
    result = storage_maintenance.execute_in_process(resources=build_resources(settings))
    assert result.success
    with engine.connect() as connection:
        days = set(day_partitions(connection, "predictions"))
    assert utc_today() + timedelta(days=10) in days
