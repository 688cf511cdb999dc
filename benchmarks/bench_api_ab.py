"""/predict of two trees side by side: alternating short ``bench_api.py`` runs, ratios per pair.

One ``bench_api.py`` run per tree is one sample of a machine whose speed drifts (other
processes, CPU frequency, the page cache): two runs minutes apart differ by more than the 5-10 %
a change is worth, and three rounds in a fixed order carry the drift into every ratio. Here the
two trees run in pairs, back to back, the order alternating from pair to pair (A B, B A, A B,
...), so a drift within a pair touches both about equally and one across pairs cancels; each
pair gives a ratio B / A of throughput and of server CPU per request, and the median of the
ratios is the figure, with their spread beside it.

Each run is the tree's own ``benchmarks/bench_api.py`` with ``PYTHONPATH=<tree>/src`` (its own
server, warm-up of the Redis history and wrk client) into a fresh PostgreSQL database, dropped
afterwards; the state URL names a Redis database both trees may flush (each run warms it anew).
A tree is a checkout of the repository (``git worktree add`` or ``git archive``); both default
to this one, and the tree against itself measures the method's own noise (the ratios' spread).

    .venv/bin/python benchmarks/bench_api_ab.py --tree-a /work/wt-base963 --tree-b /work/main
    .venv/bin/python benchmarks/bench_api_ab.py --tree-a A --tree-b B --pairs 6 --duration 10
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import make_url

from bench_api import drop_database  # benchmarks/ is the script's folder

REPO = Path(__file__).resolve().parents[1]
PREDICT_LINE = re.compile(
    r"^/predict \(.*\): ([\d,]+) req/s, .*server CPU (\d+) us/request", re.MULTILINE
)


@dataclass(frozen=True)
class Run:
    """One tree's /predict figures from one ``bench_api.py`` run."""

    requests_per_s: float
    cpu_us_per_request: float


def parse_args() -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tree-a", type=Path, default=REPO, help="the reference tree")
    parser.add_argument("--tree-b", type=Path, default=REPO, help="the tree compared with it")
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--duration", type=int, default=10, help="measured seconds per run")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--database-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/vigil_ab",
        help="prefix of the fresh databases (a suffix per run is added)",
    )
    parser.add_argument(
        "--state-url", default="redis://127.0.0.1:6379/14", help="a Redis database it may flush"
    )
    parser.add_argument(
        "--bench-arg",
        action="append",
        default=[],
        help="extra bench_api.py argument for both trees (repeat): --bench-arg=--connections=64",
    )
    return parser.parse_args()


def _database(prefix: str, suffix: str) -> str:
    url = make_url(prefix)
    return url.set(database=f"{url.database}_{suffix}").render_as_string(hide_password=False)


def run_tree(tree: Path, args: argparse.Namespace, suffix: str) -> Run:
    """One ``bench_api.py`` run of ``tree`` (its own code) into a fresh database."""
    database = _database(args.database_url, suffix)
    script = tree / "benchmarks" / "bench_api.py"
    command = [
        sys.executable, str(script), "--duration", str(args.duration),
        "--warmup", str(args.warmup), "--database-url", database, "--state-url", args.state_url,
        *args.bench_arg,
    ]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="vigil-ab-") as scratch:
        if "--results" in script.read_text():  # not into the tree's docs/results (older trees
            command += ["--results", str(Path(scratch) / "bench_api.json")]  # write none)
        environment = {**os.environ, "PYTHONPATH": str(tree / "src")}
        try:
            completed = subprocess.run(
                command, cwd=tree, env=environment, capture_output=True, text=True, check=False
            )
        finally:
            drop_database(database)
    found = PREDICT_LINE.search(completed.stdout)
    if completed.returncode != 0 or found is None:
        raise RuntimeError(f"{tree}: bench_api.py failed:\n{completed.stdout}{completed.stderr}")
    return Run(float(found.group(1).replace(",", "")), float(found.group(2)))


def main() -> None:
    """Alternate the trees pair by pair; print each pair, then the medians last."""
    args = parse_args()
    a, b = args.tree_a.resolve(), args.tree_b.resolve()
    stamp = time.strftime("%H%M%S")
    throughput: list[float] = []
    cpu: list[float] = []
    print(f"A = {a}\nB = {b}\nload on the machine (1/5/15 min) at the start: {os.getloadavg()}")
    for pair in range(args.pairs):
        order = [("A", a), ("B", b)] if pair % 2 == 0 else [("B", b), ("A", a)]
        runs = {name: run_tree(tree, args, f"{stamp}_{pair}{name.lower()}") for name, tree in order}
        throughput.append(runs["B"].requests_per_s / runs["A"].requests_per_s)
        cpu.append(runs["B"].cpu_us_per_request / runs["A"].cpu_us_per_request)
        print(
            f"pair {pair + 1} ({' then '.join(name for name, _ in order)}): "
            f"A {runs['A'].requests_per_s:,.0f} req/s ({runs['A'].cpu_us_per_request:.0f} us CPU), "
            f"B {runs['B'].requests_per_s:,.0f} req/s ({runs['B'].cpu_us_per_request:.0f} us CPU): "
            f"B/A throughput {throughput[-1]:.3f}, CPU per request {cpu[-1]:.3f}; "
            f"load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    print(
        f"server CPU per request B/A: median {statistics.median(cpu):.3f} "
        f"(range {min(cpu):.3f}-{max(cpu):.3f}, {sum(r < 1 for r in cpu)} of {len(cpu)} pairs < 1)"
    )
    print(
        f"/predict throughput B/A: median {statistics.median(throughput):.3f} over {args.pairs} "
        f"alternating pairs (range {min(throughput):.3f}-{max(throughput):.3f}, "
        f"{sum(r > 1 for r in throughput)} of {len(throughput)} pairs > 1)"
    )


if __name__ == "__main__":
    main()
