"""Case queue benchmark: ``GET /cases`` latency for a day of 30,000 scored transactions.

The database holds the day (30,000 transactions of 10,000 cards at 10,000 terminals, scores
drawn like a fraud model's: most near 0, a tail towards 1) after ``--history-days`` of the same
density (each card's habit, the terminals' labelled frauds), so every query the queue runs
reads what it would in production. ``vigil serve`` (its own process, pinned to one core) then
answers an analyst's session from the other core, one request at a time: ``GET /cases``
(the day's top-100 queue with every case's transactions), ``GET /cases/{card}`` and
``POST /cases/{card}/verdict`` down the queue. Target (issue 17): ``GET /cases`` p99 <= 50 ms.

    .venv/bin/python benchmarks/bench_cases.py                       # SQLite file
    .venv/bin/python benchmarks/bench_cases.py --database-url \
        postgresql+psycopg://postgres@127.0.0.1:5432/vigil_bench_cases
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import create_engine, make_url, text

from _results import default_path, write_results  # benchmarks/ is the script's folder
from _world import start_until_healthy
from vigil.cases.queue import sync_case_days
from vigil.config import load_settings
from vigil.features import feature_names
from vigil.reports.browser import free_port
from vigil.storage import (
    LabelRecord,
    PredictionRecord,
    create_db_engine,
    insert_labels,
    insert_prediction_records,
    upgrade_database,
)

REPO = Path(__file__).resolve().parents[1]
TESTS_DIR = REPO / "tests"
VIGIL = Path(sys.executable).parent / "vigil"
DAY = datetime(2018, 9, 30)
REASONS = ["tx_amount", "terminal_id_risk_7day_window", "customer_id_nb_tx_1day_window"]
CHUNK = 20_000


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=30_000, help="on the queue's day")
    parser.add_argument("--cards", type=int, default=10_000)
    parser.add_argument("--terminals", type=int, default=10_000)
    parser.add_argument("--history-days", type=int, default=30, help="days before, same density")
    parser.add_argument("--requests", type=int, default=300, help="GET /cases requests")
    parser.add_argument("--verdicts", type=int, default=50, help="verdicts down the queue")
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    parser.add_argument(
        "--skip-fill",
        action="store_true",
        help="use --database-url as an earlier run filled it (a copy: verdicts are written)",
    )
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--server-core", default="0")
    parser.add_argument("--client-core", default="1")
    parser.add_argument("--results", type=Path, default=default_path("bench_cases"))
    return parser.parse_args()


def day_records(
    rng: np.random.Generator, day: datetime, count: int, args: argparse.Namespace, first_id: int
) -> Iterator[PredictionRecord]:
    """``count`` scored transactions spread over ``day``."""
    seconds = np.sort(rng.uniform(0, 86_400, count))
    cards = rng.integers(0, args.cards, count)
    terminals = rng.integers(0, args.terminals, count)
    amounts = rng.gamma(2.0, 30.0, count).round(2)
    scores = rng.beta(0.3, 12.0, count)
    for i in range(count):
        yield PredictionRecord(
            transaction_id=first_id + i,
            tx_datetime=day + timedelta(seconds=float(seconds[i])),
            customer_id=int(cards[i]),
            terminal_id=int(terminals[i]),
            tx_amount=float(amounts[i]),
            score=float(scores[i]),
            label=int(scores[i] >= 0.5),
            threshold=0.5,
            reason_codes=REASONS if scores[i] >= 0.5 else [],
            model_version="bench-cases",
            latency_ms=1.0,
            source="stream",
        )


def fill(url: str, args: argparse.Namespace) -> int:
    """The history and the day in the database; returns the rows written."""
    upgrade_database(url)
    engine = create_db_engine(url)
    rng = np.random.default_rng(17)
    written = 0
    for back in range(args.history_days, -1, -1):
        day = DAY - timedelta(days=back)
        records = list(day_records(rng, day, args.transactions, args, written))
        frauds = rng.choice(len(records), size=len(records) // 200, replace=False)
        labels = [LabelRecord(records[int(i)].transaction_id, 1, day) for i in frauds]
        with engine.begin() as connection:
            for start in range(0, len(records), CHUNK):
                insert_prediction_records(connection, records[start : start + CHUNK])
            if back >= 7:  # labels arrive after the delay
                insert_labels(connection, labels)
        written += len(records)
    with engine.begin() as connection:
        connection.execute(text("ANALYZE"))  # planner statistics, as a live database has
    # A live queue copies each day as it is read (vigil.storage.case_copy); this history
    # arrived at once, so its days are copied here in one go, and timed.
    started = time.perf_counter()
    with engine.begin() as connection:
        copied = sync_case_days(connection, load_settings().cases, DAY.date(), "all")
        connection.execute(text("ANALYZE"))
    print(f"case queue copy: {copied:,} rows in {time.perf_counter() - started:.1f} s")
    engine.dispose()
    return written


def reset_postgres(url: str) -> None:
    """Drop and recreate the benchmark's own PostgreSQL database."""
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}"'))
        connection.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()


def model(directory: Path) -> Path:
    """A logistic ONNX model over the configured features (the test factory's)."""
    sys.path.insert(0, str(TESTS_DIR))  # the test model factory, shared rather than copied
    from onnx_factory import logistic_model, make_metadata, save

    names = feature_names(load_settings().features)
    metadata = make_metadata(names, threshold=0.5, model_version="bench-cases")
    return save(logistic_model([0.0] * len(names), -3.0, metadata), directory / "model.onnx")


def start_server(
    args: argparse.Namespace, url: str, model_path: Path, key: str, log: Path
) -> subprocess.Popen[bytes]:
    """``vigil serve`` on one core; returns once /health answers."""
    environment = {**os.environ, "VIGIL_SERVING__API_KEY": key}
    command = ["taskset", "-c", args.server_core, str(VIGIL), "serve"]
    for assignment in (
        f"inference.model_path={model_path}",
        f"storage.database_url={url}",
        f"serving.port={args.port}",
    ):
        command += ["--set", assignment]
    return start_until_healthy(command, args.port, log, environment)


def timed(call: Callable[[], httpx.Response], *expected: int) -> float:
    """Milliseconds one request took; fails on an unexpected status."""
    started = time.perf_counter()
    response = call()
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code not in expected:
        raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
    return elapsed


def percentiles(values: list[float]) -> tuple[float, float, float]:
    """(p50, p99, max) in milliseconds."""
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[98], max(values)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (so the machine's other load stays out of the figure)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def session(client: httpx.Client, args: argparse.Namespace, pid: int) -> dict[str, float]:
    """An analyst's session: the queue again and again, cases, verdicts down the queue."""
    # the first read copies the days the queue reads (vigil.storage.case_copy) if need be
    first = timed(lambda: client.get("/cases"), 200)
    print(f"first GET /cases: {first:.0f} ms")
    for _ in range(10):  # warm-up: connections, caches
        timed(lambda: client.get("/cases"), 200)
    cpu = cpu_seconds(pid)
    queue = [timed(lambda: client.get("/cases"), 200) for _ in range(args.requests)]
    cpu_ms = (cpu_seconds(pid) - cpu) / args.requests * 1000
    body = client.get("/cases").json()
    if body["size"] != 100 or sum(len(c["transactions"]) for c in body["cases"]) < 100:
        raise RuntimeError(f"unexpected queue: size {body['size']}")
    cards = [case["customer_id"] for case in body["cases"]]
    one = [timed(lambda c=c: client.get(f"/cases/{c}"), 200) for c in cards]
    verdicts = [
        # 200: a --skip-fill database may hold the verdict of an earlier run already
        timed(lambda c=c: client.post(f"/cases/{c}/verdict", json=_verdict(c)), 201, 200)
        for c in cards[: args.verdicts]
    ]
    figures = {}
    for name, values in (("queue", queue), ("case", one), ("verdict", verdicts)):
        p50, p99, worst = percentiles(values)
        figures |= {f"{name}_p50_ms": p50, f"{name}_p99_ms": p99, f"{name}_max_ms": worst}
        print(f"{name:8s} n={len(values):4d}  p50 {p50:6.1f}  p99 {p99:6.1f}  max {worst:6.1f} ms")
    print(f"server CPU per GET /cases (background ranking refreshes included): {cpu_ms:.1f} ms")
    return figures | {"queue_server_cpu_ms": cpu_ms, "first_queue_ms": first}


def _verdict(card: int) -> dict[str, object]:
    return {"verdict": "fraud" if card % 3 == 0 else "legit", "analyst": "bench"}


def main() -> None:
    """Fill, serve, measure; the queue's p99 last."""
    args = parse_args()
    args.port = args.port or free_port()
    with tempfile.TemporaryDirectory(prefix="vigil-bench-cases-") as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'cases.db'}"
        if not args.skip_fill:
            if url.startswith("postgresql"):
                reset_postgres(url)
            started = time.perf_counter()
            rows = fill(url, args)
            print(
                f"database: {make_url(url).get_backend_name()}, {rows:,} transactions "
                f"({args.transactions:,} on the queue's day) in "
                f"{time.perf_counter() - started:.0f} s"
            )
        key = secrets.token_hex(16)
        server = start_server(args, url, model(Path(tmp)), key, Path(tmp) / "server.log")
        try:
            os.sched_setaffinity(0, {int(args.client_core)})
            headers = {"X-API-Key": key}
            base = f"http://127.0.0.1:{args.port}"
            with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
                figures = session(client, args, server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"load average (1 min): {os.getloadavg()[0]:.2f}")
    write_results("bench_cases", figures, args.results)
    print(f"GET /cases p99: {figures['queue_p99_ms']:.1f} ms (target <= 50 ms)")


if __name__ == "__main__":
    main()
