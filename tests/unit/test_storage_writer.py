"""Group-commit writer on SQLite: batching, durability, back-pressure, outages."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from storage_support import prediction_record
from vigil.storage import (
    DatabaseUnavailable,
    GroupCommitWriter,
    PredictionRecord,
    RecordRejected,
    WriterClosed,
    WriterOverloaded,
    count_rows,
    create_db_engine,
    upgrade_database,
)
from vigil.storage import sinks as sinks_module
from vigil.storage.errors import AlreadyStored
from vigil.storage.isolation import write_isolating
from vigil.storage.tables import predictions, transactions


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'vigil.db'}"
    upgrade_database(url)
    return url


def stored_ids(url: str) -> list[int]:
    """Transaction ids with a stored prediction."""
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            assert count_rows(connection, transactions) == count_rows(connection, predictions)
            query = select(predictions.c.transaction_id).order_by(predictions.c.transaction_id)
            return list(connection.execute(query).scalars())
    finally:
        engine.dispose()


async def test_concurrent_submits_share_commits(db_url: str) -> None:
    observed: list[tuple[int, float]] = []
    writer = GroupCommitWriter(
        db_url, max_batch=64, max_delay_ms=5, on_commit=lambda n, s: observed.append((n, s))
    )
    await writer.start()
    await asyncio.gather(*(writer.submit(prediction_record(i)) for i in range(200)))
    await writer.stop()
    assert stored_ids(db_url) == list(range(200))
    assert writer.commits == len(observed) < 200
    assert sum(n for n, _ in observed) == 200
    assert max(n for n, _ in observed) <= 64
    assert all(seconds > 0 for _, seconds in observed)


async def test_submit_returns_only_after_commit(db_url: str) -> None:
    writer = GroupCommitWriter(db_url, max_batch=8, max_delay_ms=1)
    await writer.start()
    await writer.submit(prediction_record(7))
    assert stored_ids(db_url) == [7]
    await writer.stop()


async def test_duplicate_submits_store_one_row(db_url: str) -> None:
    writer = GroupCommitWriter(db_url, max_batch=8, max_delay_ms=1)
    await writer.start()
    await asyncio.gather(*(writer.submit(prediction_record(1)) for _ in range(5)))
    await writer.submit(prediction_record(1))  # an id stored before is not an error for submit
    (again,) = await writer.submit_many([prediction_record(1)])
    (new,) = await writer.submit_many([prediction_record(2)])
    await writer.stop()
    assert isinstance(again, AlreadyStored) and new is None  # what the insert reports
    assert stored_ids(db_url) == [1, 2]


async def test_full_queue_refuses_at_once_and_stores_nothing_for_the_refused(db_url: str) -> None:
    # A long linger keeps the two accepted records queued while the third arrives.
    writer = GroupCommitWriter(db_url, max_batch=100, max_delay_ms=10_000, queue_max=2)
    await writer.start()
    accepted = [asyncio.create_task(writer.submit(prediction_record(i))) for i in (1, 2)]
    await asyncio.sleep(0)
    assert writer.queue_depth == 2
    with pytest.raises(WriterOverloaded):
        await writer.submit(prediction_record(3))
    await writer.stop()  # drains: the accepted records are committed
    await asyncio.gather(*accepted)
    assert stored_ids(db_url) == [1, 2]


async def test_stopped_writer_refuses(db_url: str) -> None:
    writer = GroupCommitWriter(db_url)
    with pytest.raises(WriterClosed):
        await writer.submit(prediction_record(1))
    await writer.start()
    await writer.stop()
    with pytest.raises(WriterClosed):
        await writer.submit(prediction_record(1))


async def wait_healthy(writer: GroupCommitWriter, timeout_s: float = 5.0) -> None:
    """Poll until the writer reports a reachable database."""
    async with asyncio.timeout(timeout_s):
        while not writer.healthy:
            await asyncio.sleep(0.01)


async def test_unreachable_database_fails_fast_then_recovers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'not-yet' / 'vigil.db'}"  # its folder does not exist yet
    writer = GroupCommitWriter(url, retry_initial_s=0.01, retry_max_s=0.05)
    await writer.start()
    assert not writer.healthy
    with pytest.raises(DatabaseUnavailable):
        await writer.submit(prediction_record(1))
    upgrade_database(url)  # the database comes back
    await wait_healthy(writer)
    await writer.submit(prediction_record(2))
    await writer.stop()
    assert stored_ids(url) == [2]


async def test_outage_mid_stream_fails_pending_records_then_resumes(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_insert = sinks_module.insert_prediction_records
    outage = {"failures_left": 1}

    def flaky_insert(connection: object, records: list[PredictionRecord]) -> set[int]:
        if outage["failures_left"] > 0:
            outage["failures_left"] -= 1
            raise OperationalError("INSERT", {}, Exception("server closed the connection"))
        return real_insert(connection, records)

    monkeypatch.setattr(sinks_module, "insert_prediction_records", flaky_insert)
    writer = GroupCommitWriter(db_url, max_batch=4, max_delay_ms=1, retry_initial_s=0.01)
    await writer.start()
    results = await asyncio.gather(
        *(writer.submit(prediction_record(i)) for i in range(10)), return_exceptions=True
    )
    failed = [i for i, r in enumerate(results) if isinstance(r, DatabaseUnavailable)]
    acknowledged = [i for i, r in enumerate(results) if r is None]
    assert failed, "the outage must surface as DatabaseUnavailable"
    assert len(failed) + len(acknowledged) == 10
    await wait_healthy(writer)
    await writer.submit(prediction_record(99))
    await writer.stop()
    assert stored_ids(db_url) == [*acknowledged, 99]


async def test_submit_many_returns_once_all_its_records_are_committed(db_url: str) -> None:
    observed: list[int] = []
    writer = GroupCommitWriter(
        db_url, max_batch=4, max_delay_ms=1, on_commit=lambda n, _s: observed.append(n)
    )
    await writer.start()
    await writer.submit_many([prediction_record(i) for i in range(10)])  # spans three commits
    assert observed == [4, 4, 2] and stored_ids(db_url) == list(range(10))
    await writer.stop()


async def test_submit_many_refuses_the_whole_group_when_it_does_not_fit(db_url: str) -> None:
    writer = GroupCommitWriter(db_url, max_batch=4, max_delay_ms=50, queue_max=5)
    await writer.start()
    with pytest.raises(WriterOverloaded):
        await writer.submit_many([prediction_record(i) for i in range(6)])
    await writer.submit_many([prediction_record(i) for i in range(5)])
    await writer.stop()
    assert stored_ids(db_url) == list(range(5))


async def test_write_isolating_halves_until_the_poison_stands_alone() -> None:
    written: list[list[int]] = []

    async def write(batch: list[int]) -> set[int]:
        if 13 in batch:
            raise ValueError("poison")
        written.append(list(batch))
        return {i for i in batch if i != 7}  # 7 was stored before (another process)

    outcomes = await write_isolating(write, list(range(32)), lambda i: i)
    assert [i for i, o in enumerate(outcomes) if o is not None] == [7, 13]
    assert isinstance(outcomes[7], AlreadyStored)
    assert isinstance(outcomes[13], RecordRejected) and outcomes[13].transaction_id == 13
    assert sorted(i for batch in written for i in batch) == [i for i in range(32) if i != 13]
    assert len(written) <= 2 * 5  # about two writes per halving, log2(32) = 5 halvings


async def test_sqlite_writer_refuses_only_the_poison_prediction_record(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'vigil.db'}"
    upgrade_database(url)
    writer = GroupCommitWriter(url, max_batch=64, max_delay_ms=5)
    await writer.start()
    poison = 2**63  # beyond SQLite's INTEGER: the driver refuses it
    results = await asyncio.gather(
        *(writer.submit(prediction_record(i)) for i in range(100)),
        writer.submit(prediction_record(poison)),
        return_exceptions=True,
    )
    many = await writer.submit_many(
        [prediction_record(200), prediction_record(poison + 1), prediction_record(201)]
    )
    await writer.stop()
    assert results[:100] == [None] * 100
    assert isinstance(results[100], RecordRejected) and results[100].transaction_id == poison
    assert [o is None for o in many] == [True, False, True]
    engine = create_db_engine(url)
    with engine.connect() as connection:
        assert count_rows(connection, transactions) == count_rows(connection, predictions) == 102
    engine.dispose()
