"""PostgreSQL server work per 1,000 stored decisions, tree against tree, side by side.

Each round runs, per source tree, a child process with ``PYTHONPATH=<tree>/src`` that migrates
a fresh database of its own to that tree's head and stores ``--batches`` batches of
``--batch`` prediction records through that tree's own sink (``make_sink(url, 1).write``, the
path the group commit and the stream worker share), then reads: the sink's backend CPU from
``/proc/<pid>/schedstat`` (nanoseconds, that backend alone: other processes' CPU does not enter
it, but a loaded machine slows it, so compare trees within one run), the database's committed
transactions, heap rows inserted and B-tree entries written (inserted rows times the B-tree
indexes of each table written), and the plan of one extra batch under ``EXPLAIN (ANALYZE,
BUFFERS, WAL)``. The records are alike in every tree: replayed event times, 5,000 cards, 10,000
terminals, three reason codes, two extra fields, one receipt clock read per batch (as the
pipeline stamps them).

    PYTHONPATH=src python benchmarks/bench_pg_trees.py main=. b963=/work/wt-base963 \
        b089=/work/wt-base089 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

STATS = """
SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
       (SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables),
       (SELECT coalesce(sum(t.n_tup_ins * (SELECT count(*) FROM pg_index i
                                            JOIN pg_class c ON c.oid = i.indexrelid
                                            JOIN pg_am a ON a.oid = c.relam
                                            WHERE i.indrelid = t.relid AND a.amname = 'btree')), 0)
          FROM pg_stat_user_tables t)
"""
"""Committed transactions, heap rows inserted, B-tree entries inserted (all tables; a BRIN index
makes no entry per row)."""


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="*", help="name=path of a source tree (repo root)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--prefix", default="store_trees", help="database name prefix")
    parser.add_argument("--child", metavar="DATABASE", help=argparse.SUPPRESS)
    return parser.parse_args()


def make_batches(batches: int, size: int) -> list[list[Any]]:
    """``batches`` lists of ``size`` records (the imported tree's ``PredictionRecord``)."""
    from vigil.storage import PredictionRecord

    start = datetime(2018, 4, 1)
    out = []
    for b in range(batches):
        received = datetime.now(UTC)
        batch = []
        for i in range(size):
            n = b * size + i
            batch.append(
                PredictionRecord(
                    transaction_id=10_000_000 + n,
                    tx_datetime=start + timedelta(seconds=7 * n),
                    customer_id=(n * 7919) % 5000,
                    terminal_id=(n * 104_729) % 10_000,
                    tx_amount=round(5 + (n * 37 % 20_000) / 100, 2),
                    score=(n % 997) / 997,
                    label=int(n % 997 > 900),
                    threshold=0.9,
                    reason_codes=["tx_amount", "terminal_risk_7d", "customer_nb_tx_1d"],
                    model_version="vigil-0123456789",
                    latency_ms=0.8,
                    source="stream",
                    extra={"tx_time_seconds": 7 * n, "tx_time_days": 7 * n // 86_400},
                    received_at=received,
                    created_at=received,
                )
            )
        out.append(batch)
    return out


def cpu_ns(pid: int) -> int:
    """Nanoseconds a process has run on a CPU (``/proc/<pid>/schedstat``)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def _connection(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url.replace("+psycopg", ""), autocommit=True)


async def _store(url: str, batches: list[list[Any]]) -> tuple[int, list[str]]:
    """Write every batch through the tree's sink; (backend CPU ns, EXPLAIN of one more batch)."""
    from vigil.storage.pg_insert import INSERT_RECORDS_SQL, records_json
    from vigil.storage.sinks import make_sink

    sink: Any = make_sink(url, 1)
    await sink.write(batches[0])  # warm: connection, prepared statement, catalog caches
    pid = sink._idle[0].info.backend_pid
    before = cpu_ns(pid)
    for batch in batches[1:-1]:
        await sink.write(batch)
    spent = cpu_ns(pid) - before
    await sink.close()
    with _connection(url) as connection:
        explain = "EXPLAIN (ANALYZE, BUFFERS, WAL, COSTS OFF) " + INSERT_RECORDS_SQL
        plan = [row[0] for row in connection.execute(explain, (records_json(batches[-1]),))]
    return spent, plan


def child(database: str, args: argparse.Namespace) -> None:
    """Migrate ``database``, store the batches, print one JSON line of figures."""
    from vigil.storage import upgrade_database

    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"
    upgrade_database(url)
    batches = make_batches(args.batches + 2, args.batch)  # + warm-up, + EXPLAIN batch
    time.sleep(1.2)  # the migration's backends have exited; their statistics are flushed
    with _connection(url) as connection:
        before = connection.execute(STATS).fetchone()
    spent, plan = asyncio.run(_store(url, batches))
    time.sleep(1.2)  # the sink's backend has exited; its statistics are flushed
    with _connection(url) as connection:
        after = connection.execute(STATS).fetchone()
    assert before is not None and after is not None
    commits, heap, index = (int(a) - int(b) for a, b in zip(after, before, strict=True))
    print(
        json.dumps(
            {"cpu_ns": spent, "commits": commits, "heap": heap, "index": index, "plan": plan}
        )
    )


def run_tree(name: str, tree: Path, database: str, args: argparse.Namespace) -> dict[str, Any]:
    """One child run of ``tree`` into a fresh ``database`` (dropped afterwards)."""
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}"')
        admin.execute(f'CREATE DATABASE "{database}"')
    try:
        env = {**os.environ, "PYTHONPATH": str(tree / "src")}
        command = [
            sys.executable,
            __file__,
            "--child",
            database,
            "--batches",
            str(args.batches),
            "--batch",
            str(args.batch),
        ]
        done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    """Alternate the trees for ``--rounds`` rounds; print per-1,000-record figures, the
    headline (median backend CPU per 1,000 records per tree) last."""
    args = parse_args()
    if args.child:
        child(args.child, args)
        return
    trees = {name: Path(path).resolve() for name, path in (t.split("=", 1) for t in args.trees)}
    records = args.batches * args.batch  # the batches between warm-up and EXPLAIN
    cpu: dict[str, list[float]] = {name: [] for name in trees}
    for r in range(args.rounds):
        for name, tree in trees.items():
            figures = run_tree(name, tree, f"{args.prefix}_{name}_{r}", args)
            cpu[name].append(figures["cpu_ns"] / records / 1e3)  # ms per 1,000 records
            written = (args.batches + 2) * args.batch  # with the warm-up and EXPLAIN batches
            per_k = {k: figures[k] / written * 1000 for k in ("commits", "heap", "index")}
            print(
                f"round {r} {name}: backend CPU {cpu[name][-1]:.1f} ms per 1,000 records; "
                f"per 1,000 stored: {per_k['commits']:.1f} commits, {per_k['heap']:.0f} heap "
                f"rows, {per_k['index']:.0f} B-tree entries",
                flush=True,
            )
            if r == 0:
                print("\n".join(f"    {line}" for line in figures["plan"]), flush=True)
    print(
        "PostgreSQL backend CPU per 1,000 stored decisions, median of "
        f"{args.rounds} rounds ({args.batch}-record batches): "
        + ", ".join(f"{n} {statistics.median(v):.1f} ms" for n, v in cpu.items())
    )


if __name__ == "__main__":
    main()
