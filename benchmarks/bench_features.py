"""Feature benchmark: offline build time and peak memory, online features_for per second.

    .venv/bin/python benchmarks/bench_features.py                      # 2M rows, < 2 min
    .venv/bin/python benchmarks/bench_features.py --rows 50000000      # the 50M target
    .venv/bin/python benchmarks/bench_features.py --rows 0 --redis-url redis://127.0.0.1:6379/15

Synthetic data keep the handbook's density (about 2 transactions per customer per day and
two terminals per customer) and are written day-partitioned under ``--work-dir``. The build
runs in a child process so that its peak RSS (``ru_maxrss``) is measured alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vigil.config import FeaturesConfig
from vigil.data import schema

TX_PER_CUSTOMER_DAY = 2.0


def synthesise(raw_dir: Path, rows: int, days: int, seed: int = 0) -> None:
    """Write ``rows`` random transactions over ``days`` days as ``tx_date=YYYY-MM-DD`` Parquet."""
    rng = np.random.default_rng(seed)
    n_customers = max(int(rows / days / TX_PER_CUSTOMER_DAY), 10)
    per_day = np.full(days, rows // days)
    per_day[: rows % days] += 1
    next_id = 0
    for day, n in enumerate(per_day.tolist()):
        start = datetime(2018, 4, 1) + timedelta(days=day)
        seconds = np.sort(rng.integers(0, 86_400, n))
        table = pa.table(
            {
                schema.TRANSACTION_ID: np.arange(next_id, next_id + n, dtype=np.int64),
                schema.TX_DATETIME: pa.array(
                    np.datetime64(start, "us") + seconds.astype("timedelta64[s]"),
                    pa.timestamp("us"),
                ),
                schema.CUSTOMER_ID: rng.integers(0, n_customers, n),
                schema.TERMINAL_ID: rng.integers(0, 2 * n_customers, n),
                schema.TX_AMOUNT: np.round(rng.lognormal(3.5, 0.8, n), 2),
                schema.TX_FRAUD: (rng.random(n) < 0.008).astype(np.int8),
                schema.TX_FRAUD_SCENARIO: np.zeros(n, dtype=np.int8),
            }
        )
        part = raw_dir / f"{schema.TX_DATE}={(date(2018, 4, 1) + timedelta(days=day))}"
        part.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, part / "part-0.parquet")
        next_id += n


def run_build(raw_dir: Path, output: Path, memory_limit: str, threads: int) -> dict[str, object]:
    """build_feature_table in a child process; returns its summary plus peak RSS in MB."""
    command = [sys.executable, __file__, "--child", str(raw_dir), str(output)]
    command += ["--memory-limit", memory_limit, "--threads", str(threads)]
    completed = subprocess.run(command, check=True, capture_output=True, text=True)
    summary: dict[str, object] = json.loads(completed.stdout.strip().splitlines()[-1])
    summary["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return summary


def child(raw_dir: Path, output: Path, memory_limit: str, threads: int) -> None:
    """The measured work: one build_feature_table call."""
    from vigil.features.offline import build_feature_table

    config = FeaturesConfig(duckdb_memory_limit=memory_limit, duckdb_threads=threads)
    summary = build_feature_table(config, raw_dir, output, progress=False)
    result = {"rows": summary.rows, "seconds": summary.seconds, "buckets": summary.buckets}
    sys.stdout.write(json.dumps(result) + "\n")


def bench_online(url: str, n: int, batch: int) -> float:
    """Transactions per second through ``features_for_batch`` (batch 1 = ``features_for``)."""
    from vigil.features.online import OnlineFeatureComputer
    from vigil.features.state import Transaction, make_state_store

    rng = np.random.default_rng(1)
    start = datetime(2018, 4, 1)
    seconds = np.sort(rng.integers(0, 30 * 86_400, n))
    customers, terminals = rng.integers(0, 500, n), rng.integers(0, 1000, n)
    txs = [
        Transaction(i, start + timedelta(seconds=int(s)), int(c), int(t), 42.0)
        for i, (s, c, t) in enumerate(zip(seconds, customers, terminals, strict=True))
    ]
    prefix = f"vigil:bench:{time.time_ns()}"
    store = make_state_store(url, prefix=prefix)
    computer = OnlineFeatureComputer(FeaturesConfig(), store)
    started = time.perf_counter()
    if batch == 1:
        for tx in txs:
            computer.features_for(tx)
    else:
        for i in range(0, n, batch):
            computer.features_for_batch(txs[i : i + batch])
    rate = n / (time.perf_counter() - started)
    store.close()
    if url.startswith("redis"):
        import redis

        client = redis.Redis.from_url(url)
        for key in client.scan_iter(f"{prefix}:*", count=1000):
            client.delete(key)
        client.close()
    return rate


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="0 skips the offline run")
    parser.add_argument("--days", type=int, default=183)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/vigil-bench-features"))
    parser.add_argument("--memory-limit", default="2GB")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--online", type=int, default=10_000, help="online calls (0 skips)")
    parser.add_argument("--batch", type=int, default=100, help="micro-batch size timed too")
    parser.add_argument("--redis-url", default=None, help="also time the Redis store")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.memory_limit, args.threads)
        return
    headline = []
    if args.online:
        for url in ["memory://", *([args.redis_url] if args.redis_url else [])]:
            kind = url.split(":")[0]
            for batch in (1, args.batch):
                rate = bench_online(url, args.online, batch)
                headline.append(f"online {kind} batch {batch}: {rate:,.0f} tx/s")
    if args.rows:
        raw_dir = args.work_dir / f"raw-{args.rows}-{args.days}d"
        if not raw_dir.exists():
            started = time.perf_counter()
            synthesise(raw_dir, args.rows, args.days)
            print(f"synthesised {args.rows:,} rows in {time.perf_counter() - started:.0f} s")
        output = args.work_dir / f"features-{args.rows}.parquet"
        result = run_build(raw_dir, output, args.memory_limit, args.threads)
        headline.append(
            f"features: {result['rows']:,} rows in {result['seconds']:.1f} s, "
            f"peak RSS {result['peak_rss_mb']:,.0f} MB "
            f"(memory_limit {args.memory_limit}, {args.threads} threads, "
            f"{result['buckets']} buckets)"
        )
    print("; ".join(headline) if headline else "nothing measured")


if __name__ == "__main__":
    main()
