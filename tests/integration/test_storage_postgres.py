"""Storage against real PostgreSQL: migrations, lossless restarts, killed connections."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, make_url, select, text

from conftest import private_pg_schema
from storage_support import prediction_record
from vigil.storage import (
    DatabaseUnavailable,
    GroupCommitWriter,
    PredictionRecord,
    RecordRejected,
    WriterClosed,
    count_rows,
    create_db_engine,
    upgrade_database,
)
from vigil.storage.partitions import include_name
from vigil.storage.tables import metadata, predictions, transactions

pytestmark = pytest.mark.integration


def make_record(transaction_id: int) -> PredictionRecord:
    """A hand-made scored transaction, its card, terminal and amount from its id."""
    return prediction_record(
        transaction_id,
        customer_id=transaction_id % 17,
        terminal_id=transaction_id % 23,
        tx_amount=float(transaction_id),
        score=0.3,
        reason_codes=["tx_amount"],
        latency_ms=0.5,
        source="stream",
    )


@pytest.fixture
def schema_url(postgres_url: str) -> Iterator[str]:
    """A migrated, private schema (and application name) so parallel test runs never clash."""
    with private_pg_schema(postgres_url, "vigil_storage") as url:
        upgrade_database(url)
        yield url


def stored_ids(url: str) -> set[int]:
    """Ids with a stored prediction; checks every prediction has its transaction."""
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            assert count_rows(connection, transactions) == count_rows(connection, predictions)
            ids = connection.execute(select(predictions.c.transaction_id)).scalars().all()
    finally:
        engine.dispose()
    return set(ids)


def test_migrations_create_the_declared_schema(schema_url: str) -> None:
    engine = create_db_engine(schema_url)
    try:
        assert set(metadata.tables) <= set(inspect(engine).get_table_names())
        with engine.connect() as connection:
            # Day partitions and the id index are storage detail (vigil.storage.partitions).
            context = MigrationContext.configure(connection, opts={"include_name": include_name})
            assert compare_metadata(context, metadata) == []
        upgrade_database(schema_url)  # idempotent
    finally:
        engine.dispose()


def test_migration_0009_reads_the_labels_received_lately_by_index(schema_url: str) -> None:
    """The state recovery's tail re-warm reads the labels received since a time
    (``features/warmup.received_transactions``): a range of ``ix_labels_received_at``, not a scan
    of every label; the downgrade drops the index."""
    from alembic import command

    from vigil.storage.migrate import alembic_config

    engine = create_db_engine(schema_url)
    lately = text(
        "EXPLAIN SELECT transaction_id FROM labels WHERE received_at >= '2026-12-06 19:40+00'"
    )
    try:
        with engine.begin() as connection:  # a label a second over 10,000 s
            connection.execute(
                text(
                    "INSERT INTO labels SELECT i, 0, timestamp '2026-12-06 17:00' + i * interval "
                    "'1 s', timestamptz '2026-12-06 17:00+00' + i * interval '1 s' "
                    "FROM generate_series(1, 10000) i"
                )
            )
            connection.execute(text("ANALYZE labels"))
            plan = "\n".join(connection.execute(lately).scalars())
        assert "Index Scan using ix_labels_received_at on labels" in plan, plan
        command.downgrade(alembic_config(schema_url), "0008")
        assert "ix_labels_received_at" not in {
            str(index["name"]) for index in inspect(engine).get_indexes("labels")
        }
        upgrade_database(schema_url)
    finally:
        engine.dispose()


async def submit_all(
    writer: GroupCommitWriter, ids: range, acknowledged: set[int], concurrency: int = 64
) -> None:
    """Submit ids ``concurrency`` at a time, recording those whose commit was acknowledged."""

    async def one(transaction_id: int) -> None:
        try:
            await writer.submit(make_record(transaction_id))
        except (WriterClosed, DatabaseUnavailable):
            return
        acknowledged.add(transaction_id)

    for start in range(ids.start, ids.stop, concurrency):
        await asyncio.gather(*(one(i) for i in range(start, min(start + concurrency, ids.stop))))


async def test_stop_mid_stream_loses_no_acknowledged_record(schema_url: str) -> None:
    acknowledged: set[int] = set()
    writer = GroupCommitWriter(schema_url, max_batch=128, max_delay_ms=2)
    await writer.start()
    producer = asyncio.create_task(submit_all(writer, range(5_000), acknowledged))
    while len(acknowledged) < 1_000:
        await asyncio.sleep(0.005)
    await writer.stop()  # mid-stream: in-flight records are committed, later ones refused
    await producer
    assert 1_000 <= len(acknowledged) < 5_000
    assert acknowledged <= stored_ids(schema_url)

    restarted = GroupCommitWriter(schema_url, max_batch=128, max_delay_ms=2)
    await restarted.start()
    await submit_all(restarted, range(5_000), acknowledged)  # redelivery of everything
    await restarted.stop()
    assert acknowledged == stored_ids(schema_url) == set(range(5_000))


def terminate_backends(admin_url: str, application_name: str) -> int:
    """pg_terminate_backend every connection of ``application_name``; returns how many."""
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            killed = connection.execute(
                text(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                    "FROM pg_stat_activity WHERE application_name = :name"
                ),
                {"name": application_name},
            ).scalar_one()
    finally:
        engine.dispose()
    return int(killed)


async def test_killed_connection_mid_stream_is_recovered(
    schema_url: str, postgres_url: str
) -> None:
    acknowledged: set[int] = set()
    writer = GroupCommitWriter(schema_url, max_batch=128, max_delay_ms=2, retry_initial_s=0.01)
    await writer.start()
    producer = asyncio.create_task(submit_all(writer, range(4_000), acknowledged))
    while len(acknowledged) < 1_000:
        await asyncio.sleep(0.005)
    application_name = make_url(schema_url).query["application_name"]
    killed = await asyncio.to_thread(terminate_backends, postgres_url, application_name)
    await producer
    assert killed >= 1
    assert writer.healthy
    missing = set(range(4_000)) - acknowledged
    await submit_all(writer, range(4_000), acknowledged)  # retry anything refused
    await writer.stop()
    assert acknowledged == stored_ids(schema_url) == set(range(4_000))
    assert len(missing) <= 128, "at most one batch may fail when the connection drops"


def test_bulk_insert_keeps_values_and_is_idempotent(schema_url: str) -> None:
    """The one-statement JSON insert stores every field as the portable INSERT did; first wins."""
    from dataclasses import replace

    from vigil.storage import fetch_prediction, insert_prediction_records

    first = replace(make_record(1), extra={"channel": "web"}, challenger_score=0.25)
    engine = create_db_engine(schema_url)
    try:
        with engine.begin() as connection:
            insert_prediction_records(connection, [first, replace(first, score=0.9)])
        with engine.begin() as connection:
            insert_prediction_records(connection, [replace(first, score=0.8), make_record(2)])
        with engine.connect() as connection:
            stored = fetch_prediction(connection, 1)
            plain = fetch_prediction(connection, 2)
            raw_extra = connection.execute(
                text("SELECT extra::text FROM transactions WHERE transaction_id = 2")
            ).scalar_one()
    finally:
        engine.dispose()
    assert stored is not None and plain is not None
    assert stored["score"] == 0.3 and stored["challenger_score"] == 0.25
    assert stored["reason_codes"] == ["tx_amount"] and stored["source"] == "stream"
    assert stored["tx_datetime"] == datetime(2018, 4, 1, 12) and stored["tx_amount"] == 1.0
    assert stored["created_at"] == first.created_at
    assert plain["challenger_score"] is None and raw_extra == "null"
    assert stored_ids(schema_url) == {1, 2}


def test_labels_of_more_ids_than_a_statement_binds_are_read(schema_url: str) -> None:
    """PUT /add_data reads back the stored labels and transactions of every row of an upload:
    70,000 rows (a 3 MB CSV) passed PostgreSQL's 65,535 parameters a statement and answered
    500, after the labels and files were written, on every retry (the state never fed)."""
    from vigil.storage import (
        LabelRecord,
        fetch_labels,
        fetch_transactions,
        insert_labels,
        insert_prediction_records,
    )

    n = 70_000
    moment = datetime(2018, 9, 30)
    engine = create_db_engine(schema_url)
    try:
        with engine.begin() as connection:
            insert_prediction_records(connection, [make_record(i) for i in range(n)])
            insert_labels(connection, [LabelRecord(i, i % 2, moment) for i in range(n)])
        with engine.connect() as connection:
            found = fetch_labels(connection, [*range(n), n + 1])
            stored = fetch_transactions(connection, [*range(n - 1, -1, -1), n + 1])
    finally:
        engine.dispose()
    assert found == {i: i % 2 for i in range(n)}
    assert [row["transaction_id"] for row in stored] == list(range(n))  # in id order


async def test_overlapping_batches_keep_the_first_of_an_id(schema_url: str) -> None:
    """Two connections commit batches concurrently; a later duplicate never overtakes the first."""
    from dataclasses import replace

    sizes: list[int] = []
    writer = GroupCommitWriter(
        schema_url,
        max_batch=4,
        max_delay_ms=0,
        connections=2,
        on_commit=lambda n, _s: sizes.append(n),
    )
    await writer.start()
    firsts = [make_record(i) for i in range(8)]  # two batches of distinct ids
    repeats = [replace(r, score=0.9, source="api") for r in firsts]  # the same ids again
    await asyncio.gather(*(writer.submit_many([r]) for r in [*firsts, *repeats]))
    await writer.stop()
    engine = create_db_engine(schema_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(predictions.c.score, predictions.c.source)).all()
    finally:
        engine.dispose()
    assert sorted(sizes) == [4, 4, 4, 4] and writer.commits == 4
    assert len(rows) == 8 and set(rows) == {(0.3, "stream")}
    assert stored_ids(schema_url) == set(range(8))


POISON_EXTRAS: list[dict[str, Any]] = [{"note": "a\u0000b"}, {"big": 10**30}]


async def test_group_commit_isolates_records_postgres_refuses(schema_url: str) -> None:
    writer = GroupCommitWriter(schema_url, max_batch=128, connections=2)
    await writer.start()
    good = [make_record(i) for i in range(300)]
    bad = [replace(make_record(1000 + i), extra=extra) for i, extra in enumerate(POISON_EXTRAS)]
    mixed = good[:150] + bad + good[150:]
    results = await asyncio.gather(*(writer.submit(r) for r in mixed), return_exceptions=True)
    await writer.stop()
    outcome = {r.transaction_id: result for r, result in zip(mixed, results, strict=True)}
    assert all(outcome[r.transaction_id] is None for r in good)
    assert all(isinstance(outcome[r.transaction_id], RecordRejected) for r in bad)
    assert stored_ids(schema_url) == set(range(300))


def test_an_engine_reconnects_after_its_pooled_connection_was_killed(
    postgres_url: str, schema_url: str
) -> None:
    """The admin and lifecycle routes' engine: the first call after a drop must not fail."""
    engine = create_db_engine(schema_url)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar_one() == 1
        assert terminate_backends(postgres_url, make_url(schema_url).query["application_name"])
        with engine.connect() as connection:  # the pooled connection is dead: pre-ping
            assert connection.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()
