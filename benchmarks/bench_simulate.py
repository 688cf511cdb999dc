"""Simulator throughput and peak memory: ``vigil.data.simulate.generate`` streaming to Parquet.

The world is scaled by customers (terminal density stays the handbook's) so that the run makes
about ``--rows`` transactions. Generation runs in a child process so that its peak RSS
(``ru_maxrss`` of the child) is measured alone.

    .venv/bin/python benchmarks/bench_simulate.py                    # ~5M rows, < 1 min
    .venv/bin/python benchmarks/bench_simulate.py --rows 50000000    # the 50M target
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

# E[transactions per customer per day]: E[U(0, 4)] = 2 payments, 96.9 % of Normal(12:00, 20000 s)
# times fall inside the day; with the handbook's terminal density nearly every customer has one.
TX_PER_CUSTOMER_DAY = 2 * 0.9693


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000, help="target transactions")
    parser.add_argument("--days", type=int, default=183)
    parser.add_argument("--terminals", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="output dir (default: temp dir)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--customers", type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_args()


def run_child(args: argparse.Namespace) -> None:
    """Generate in this process and print the summary as JSON (the parent reads it)."""
    from vigil.config import DataConfig
    from vigil.data.simulate import generate

    config = DataConfig(
        n_customers=args.customers, n_terminals=args.terminals, n_days=args.days, seed=args.seed
    )
    summary = generate(config, args.out, progress=False)
    sys.stdout.write(summary.model_dump_json() + "\n")


def main() -> None:
    """Spawn the generation, then report rows/s and the child's peak RSS."""
    args = parse_args()
    if args.child:
        run_child(args)
        return
    customers = math.ceil(args.rows / (args.days * TX_PER_CUSTOMER_DAY))
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as scratch:
        out = args.out if args.out is not None else Path(scratch) / "raw"
        command = [sys.executable, __file__, "--child", "--customers", str(customers)]
        command += ["--days", str(args.days), "--terminals", str(args.terminals)]
        command += ["--seed", str(args.seed), "--out", str(out)]
        completed = subprocess.run(command, check=True, capture_output=True, text=True)
        summary = json.loads(completed.stdout.strip().splitlines()[-1])
        disk_bytes = sum(f.stat().st_size for f in out.rglob("*.parquet"))
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: KiB
    rate = summary["rows"] / summary["seconds"]
    print(
        f"world: {customers:,} customers, {args.terminals:,} terminals, {args.days} days; "
        f"frauds {summary['frauds']:,} ({summary['fraud_rate']:.3%}) "
        f"by scenario {summary['frauds_by_scenario']}; Parquet {disk_bytes / 1e6:,.0f} MB"
    )
    print(
        f"simulate: {summary['rows']:,} rows in {summary['seconds']:.1f} s = {rate:,.0f} rows/s, "
        f"peak RSS {peak_mb:,.0f} MB"
    )


if __name__ == "__main__":
    main()
