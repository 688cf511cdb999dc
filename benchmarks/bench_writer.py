"""Group-commit writer throughput (records/s) on SQLite and PostgreSQL.

Many concurrent submitters (like API requests) each await their record's durable commit.

    .venv/bin/python benchmarks/bench_writer.py
    .venv/bin/python benchmarks/bench_writer.py --records 200000 --concurrency 512
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from sqlalchemy import create_engine, make_url, text

from vigil.storage import GroupCommitWriter, PredictionRecord, upgrade_database

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=30_000)
    parser.add_argument("--concurrency", type=int, default=256, help="concurrent submitters")
    parser.add_argument("--max-batch", type=int, default=256)
    parser.add_argument("--max-delay-ms", type=float, default=2.0)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument(
        "--revision",
        default="head",
        help="schema revision to write into (e.g. 0002: before the case queue's indexes)",
    )
    return parser.parse_args()


def make_record(transaction_id: int) -> PredictionRecord:
    """A realistic record: five reason codes, one extra field."""
    return PredictionRecord(
        transaction_id=transaction_id,
        tx_datetime=datetime(2018, 4, 1, 12),
        customer_id=transaction_id % 5000,
        terminal_id=transaction_id % 10_000,
        tx_amount=42.5,
        score=0.12,
        label=0,
        threshold=0.5,
        reason_codes=["tx_amount", "terminal_id_risk_7day_window", "tx_during_night"],
        model_version="vigil-0123456789",
        latency_ms=0.8,
        extra={"channel": "pos"},
    )


async def drive(url: str, args: argparse.Namespace) -> tuple[float, float, int]:
    """Submit ``args.records`` records from ``args.concurrency`` tasks; (rec/s, p50 ms, commits)."""
    commit_seconds: list[float] = []
    writer = GroupCommitWriter(
        url,
        max_batch=args.max_batch,
        max_delay_ms=args.max_delay_ms,
        queue_max=max(args.concurrency * 2, 10_000),
        on_commit=lambda _n, seconds: commit_seconds.append(seconds),
    )
    await writer.start()
    next_id = iter(range(args.records))

    async def submitter() -> None:
        for transaction_id in next_id:
            await writer.submit(make_record(transaction_id))

    started = time.perf_counter()
    await asyncio.gather(*(submitter() for _ in range(args.concurrency)))
    elapsed = time.perf_counter() - started
    await writer.stop()
    return args.records / elapsed, statistics.median(commit_seconds) * 1000, writer.commits


def run_sqlite(args: argparse.Namespace) -> float:
    """Throughput on a fresh SQLite file."""
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        upgrade_database(url, args.revision)
        return report("sqlite", *asyncio.run(drive(url, args)))


@contextlib.contextmanager
def migrated_schema(postgres_url: str, prefix: str, revision: str = "head") -> Iterator[str]:
    """The URL of a throw-away PostgreSQL schema at ``revision``, dropped afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        rendered = url.render_as_string(hide_password=False)
        upgrade_database(rendered, revision)
        yield rendered
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def run_postgres(args: argparse.Namespace) -> float:
    """Throughput on PostgreSQL, in a throw-away schema."""
    with migrated_schema(args.postgres_url, "bench_writer", args.revision) as url:
        return report("postgres", *asyncio.run(drive(url, args)))


def report(backend: str, rate: float, commit_p50_ms: float, commits: int) -> float:
    """Print one backend's figures and return its rate."""
    print(f"{backend}: {rate:,.0f} records/s, {commits} commits, commit p50 {commit_p50_ms:.2f} ms")
    return rate


def main() -> None:
    """Run the selected backends and print the headline last."""
    args = parse_args()
    runners = {"sqlite": run_sqlite, "postgres": run_postgres}
    rates = {backend: runners[backend](args) for backend in args.backends}
    summary = ", ".join(f"{name} {rate:,.0f}" for name, rate in rates.items())
    print(
        f"group-commit writer throughput (records/s, {args.concurrency} concurrent submitters,"
        f" durable): {summary}"
    )


if __name__ == "__main__":
    main()
