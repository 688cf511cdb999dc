"""PostgreSQL server CPU per stored record of the group commit's one-statement insert.

Inserts ``--batches`` batches of ``--batch`` records (transaction + prediction rows, as the
group commit does) over one autocommit psycopg connection into a throw-away schema, and reads
that connection's backend CPU time from ``/proc`` (PostgreSQL on this machine), so other load
on the machine does not enter the figure. Durable commits; WAL writer excluded.

    .venv/bin/python benchmarks/bench_pg_rows.py
    .venv/bin/python benchmarks/bench_pg_rows.py --revision 0002   # without the case indexes
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

import psycopg
from sqlalchemy import make_url

from bench_writer import POSTGRES_URL, make_record, migrated_schema
from vigil.storage.pg_insert import insert_records

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument(
        "--revision",
        default="head",
        help="schema revision to write into (e.g. 0002: before the case queue's indexes)",
    )
    return parser.parse_args()


def backend_cpu_seconds(pid: int) -> float:
    """utime + stime of a PostgreSQL backend process."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


SCHEMA_BYTES = (
    "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = current_schema() AND c.relkind = 'r'"
)


def measure(url: str, args: argparse.Namespace) -> tuple[float, float, float]:
    """(backend CPU us per record, records/s of wall time, bytes on disk per record)."""
    params = make_url(url).translate_connect_args(username="user", database="dbname")
    options = make_url(url).query["options"]
    with psycopg.connect(autocommit=True, options=options, **params) as connection:
        pid = connection.info.backend_pid
        template = make_record(0)
        batches = [
            [replace(template, transaction_id=b * args.batch + i) for i in range(args.batch)]
            for b in range(args.batches)
        ]
        insert_records(connection, batches[0])  # warm: prepared statement, catalog caches
        cpu, wall = backend_cpu_seconds(pid), time.perf_counter()
        for batch in batches[1:]:
            insert_records(connection, batch)
        wall = time.perf_counter() - wall
        cpu = backend_cpu_seconds(pid) - cpu
        size = connection.execute(SCHEMA_BYTES).fetchone()
    records = (args.batches - 1) * args.batch
    stored = float(size[0]) if size and size[0] else 0.0
    return cpu / records * 1e6, records / wall, stored / (records + args.batch)


def main() -> None:
    """Run in a throw-away schema, print the headline last."""
    args = parse_args()
    with migrated_schema(args.postgres_url, "bench_pg_rows", args.revision) as url:
        cpu_us, rate, size = measure(url, args)
    print(f"one connection: {rate:,.0f} records/s wall (batches of {args.batch})")
    print(f"on disk (tables, indexes, TOAST): {size:.0f} bytes per record")
    print(
        f"PostgreSQL backend CPU per stored record: {cpu_us:.1f} us "
        f"({1e6 / cpu_us:,.0f} records/s per core)"
    )


if __name__ == "__main__":
    main()
