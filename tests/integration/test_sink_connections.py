"""The PostgreSQL sink's connections stay bounded across a database restart under load.

Regression test for the stress campaign's finding (docs/STRESS_REPORT.md): after PostgreSQL
restarted, a burst of concurrent look-ups found no idle connection and opened one each, kept
them all, and the server refused everyone else with "too many clients" for two minutes.
Runs on a private PostgreSQL (initdb/pg_ctl) it stops and starts itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from conftest import IN_CI
from vigil.storage import DatabaseUnavailable, upgrade_database
from vigil.storage.sinks import PsycopgSink
from vigil.stress.services import PrivatePostgres

pytestmark = pytest.mark.integration

CONCURRENCY = 2
BURST = 60


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        server.init()
        server.start()
    except (FileNotFoundError, RuntimeError) as error:
        server.remove()
        if IN_CI:
            pytest.fail(f"cannot start a private PostgreSQL (CI=true: required): {error}")
        pytest.skip(f"cannot start a private PostgreSQL: {error}")
    try:
        yield server
    finally:
        server.remove()


def client_connections(url: str) -> int:
    """Client sessions open on the server, this query's own excluded."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            query = (
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
            )
            return int(connection.execute(text(query)).scalar_one())
    finally:
        engine.dispose()


async def burst(sink: PsycopgSink) -> list[BaseException | None]:
    """``BURST`` concurrent look-ups; per look-up its error or None."""

    async def one() -> BaseException | None:
        try:
            await sink.lookup([1])
        except DatabaseUnavailable as error:
            return error
        return None

    return await asyncio.gather(*[one() for _ in range(BURST)])


def test_connections_stay_bounded_across_a_restart(private_postgres: PrivatePostgres) -> None:
    upgrade_database(private_postgres.url)

    async def scenario() -> None:
        sink = PsycopgSink(private_postgres.url, CONCURRENCY)
        try:
            assert await burst(sink) == [None] * BURST
            assert client_connections(private_postgres.url) <= CONCURRENCY

            private_postgres.stop()
            outcomes = await burst(sink)
            assert all(isinstance(o, DatabaseUnavailable) for o in outcomes)

            private_postgres.start()
            assert await burst(sink) == [None] * BURST
            assert client_connections(private_postgres.url) <= CONCURRENCY
        finally:
            await sink.close()
        assert client_connections(private_postgres.url) == 0

    asyncio.run(scenario())
