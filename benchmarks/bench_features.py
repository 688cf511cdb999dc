"""Feature benchmark: offline build (new engine vs an old revision, same rows), online rate.

    .venv/bin/python benchmarks/bench_features.py                      # 2M rows, < 2 min
    .venv/bin/python benchmarks/bench_features.py --rows 50000000 --online 0 --cgroup 2GB
    .venv/bin/python benchmarks/bench_features.py --rows 1000000 --online 0 --baseline b786cec
    .venv/bin/python benchmarks/bench_features.py --source data/raw --online 0
    .venv/bin/python benchmarks/bench_features.py --rows 0 --redis-url redis://127.0.0.1:6379/15

Synthetic data keep the handbook's density (about 2 transactions per customer per day and
two terminals per customer) and are written day-partitioned under ``--work-dir``
(``--source`` reads a simulator's output instead). Each build runs in a child process, inside
a cgroup with ``--cgroup`` memory and ``--cpus`` cores when given (vigil.stress.cgroup), and
is measured alone: wall, CPU seconds (user + system) and peak RSS. ``--baseline REV`` builds
the same rows with the engine of git revision REV (its ``src`` exported to a temporary
folder), prints the time ratio and compares the two tables feature by feature (rows whose
bits differ, largest relative difference): the check that the new engine reproduces the old.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Build:
    """One child build: its summary line and what it cost."""

    rows: int
    seconds: float  # the build's own timer
    wall: float
    cpu: float
    peak_rss_mb: float
    detail: str


def run_build(
    raw_dir: Path, output: Path, args: argparse.Namespace, src: Path | None = None
) -> Build:
    """build_feature_table in a child process (``src``: another revision's source tree)."""
    command = [sys.executable, __file__, "--child", str(raw_dir), str(output)]
    command += ["--memory-limit", args.memory_limit, "--threads", str(args.threads)]
    src = src or Path(__file__).resolve().parents[1] / "src"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]))
    with tempfile.TemporaryFile("w+") as stdout:
        if args.cgroup:
            from vigil.stress.cgroup import Limits, parse_size, run_limited

            limits = Limits(parse_size(args.cgroup), args.cpus)
            result = run_limited(command, limits, name="features", env=env, stdout=stdout)
            if result.returncode != 0:
                raise SystemExit(f"build failed under {args.cgroup}: {result.as_dict()}")
            wall, cpu = result.wall_seconds, result.cpu_seconds
            peak = result.peak_rss_bytes / 2**20
        else:
            started = time.perf_counter()
            proc = subprocess.Popen(command, env=env, stdout=stdout)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - started
            if os.waitstatus_to_exitcode(status):
                raise SystemExit(f"build failed: status {os.waitstatus_to_exitcode(status)}")
            cpu, peak = usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024
        stdout.seek(0)
        out = stdout.read()
    summary = json.loads(out.strip().splitlines()[-1])
    return Build(summary["rows"], summary["seconds"], wall, cpu, peak, summary["detail"])


def child(raw_dir: Path, output: Path, memory_limit: str, threads: int) -> None:
    """The measured work: one build_feature_table call (of whichever vigil is on the path)."""
    from vigil.features.offline import build_feature_table

    config = FeaturesConfig(duckdb_memory_limit=memory_limit, duckdb_threads=threads)
    summary = build_feature_table(config, raw_dir, output, progress=False)
    detail = (
        f"{summary.chunks} chunks, rings {summary.state_mb:,.0f} MB"
        if hasattr(summary, "chunks")
        else f"{summary.buckets} buckets, memory_limit {memory_limit}"
    )
    result = {"rows": summary.rows, "seconds": summary.seconds, "detail": detail}
    sys.stdout.write(json.dumps(result) + "\n")


def export_revision(rev: str, into: Path) -> Path:
    """``src`` of git revision ``rev`` extracted under ``into``."""
    root = Path(__file__).resolve().parents[1]
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", rev, "src"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def compare(new: Path, old: Path) -> list[str]:
    """Per feature column: rows whose bits differ and the largest relative difference."""
    a, b = pq.ParquetFile(new), pq.ParquetFile(old)
    if a.schema_arrow.names != b.schema_arrow.names:
        raise SystemExit(f"columns differ: {a.schema_arrow.names} vs {b.schema_arrow.names}")
    lines = []
    for name in a.schema_arrow.names:
        x = a.read(columns=[name]).column(0).to_numpy()
        y = b.read(columns=[name]).column(0).to_numpy()
        if x.dtype.kind != "f":
            if not np.array_equal(x, y):
                raise SystemExit(f"{name} differs between the engines")
            continue
        differ = int(np.count_nonzero(x.view(np.int64) != y.view(np.int64)))
        scale = np.maximum(np.abs(y), np.finfo(np.float64).tiny)
        worst = float(np.max(np.abs(x - y) / scale)) if len(x) else 0.0
        lines.append(f"{name:48s} {differ:>10,} rows differ, max rel {worst:.2g}")
    return lines


def offline(args: argparse.Namespace) -> str:
    """Build (and with --baseline compare) on the same rows; the headline."""
    raw_dir = args.source or args.work_dir / f"raw-{args.rows}-{args.days}d"
    if args.source is None and not raw_dir.exists():
        started = time.perf_counter()
        synthesise(raw_dir, args.rows, args.days)
        print(f"synthesised {args.rows:,} rows in {time.perf_counter() - started:.0f} s")
    print(f"load before: {os.getloadavg()[0]:.1f}")
    output = args.work_dir / "features-new.parquet"
    new = run_build(raw_dir, output, args)
    where = f"cgroup {args.cgroup}, {args.cpus:g} CPUs" if args.cgroup else "no cgroup"
    line = (
        f"features: {new.rows:,} rows in {new.wall:.1f} s wall, {new.cpu:.1f} s CPU, "
        f"peak RSS {new.peak_rss_mb:,.0f} MB ({new.detail}; {where}; "
        f"load {os.getloadavg()[0]:.1f})"
    )
    if args.baseline:
        with tempfile.TemporaryDirectory(prefix="vigil-baseline-") as tmp:
            src = export_revision(args.baseline, Path(tmp))
            old_output = args.work_dir / "features-old.parquet"
            old = run_build(raw_dir, old_output, args, src)
        print(
            f"old engine ({args.baseline}): {old.wall:.1f} s wall, {old.cpu:.1f} s CPU, "
            f"peak RSS {old.peak_rss_mb:,.0f} MB ({old.detail})"
        )
        print("\n".join(compare(output, old_output)))
        old_output.unlink()
        line += (
            f"; old {args.baseline}: {old.wall:.1f} s wall, {old.cpu:.1f} s CPU, "
            f"{old.peak_rss_mb:,.0f} MB -> new/old wall {new.wall / old.wall:.2f}, "
            f"CPU {new.cpu / old.cpu:.2f}"
        )
    if not args.keep:
        output.unlink()
    return line


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
    parser.add_argument("--source", type=Path, default=None, help="raw Parquet to build from")
    parser.add_argument("--memory-limit", default="1500MB", help="old engine's DuckDB limit")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cgroup", default=None, help="run each build under this memory limit")
    parser.add_argument("--cpus", type=float, default=2.0, help="CPU quota with --cgroup")
    parser.add_argument("--baseline", default=None, help="git revision of the engine to compare")
    parser.add_argument("--keep", action="store_true", help="keep work-dir/features-new.parquet")
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
    if args.rows or args.source:
        headline.append(offline(args))
    print("; ".join(headline) if headline else "nothing measured")


if __name__ == "__main__":
    main()
