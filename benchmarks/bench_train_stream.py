"""Training at tens of millions of rows under a memory limit, streamed from the feature Parquet.

    .venv/bin/python benchmarks/bench_train_stream.py --features /work/data/features-50m.parquet

Each training is ``vigil train --stream-features FILE`` (issue 15 item 3: the fitting rows
read one row group at a time, LightGBM's genuine rows sampled above
``model.lightgbm.max_fit_rows``, the test week scored a row group at a time, tracked in
MLflow like any run) inside a cgroup of ``--memory``
and ``--cpus`` (``vigil.stress.cgroup.run_limited``: an overrun is an OOM kill, reported as
such). Per model kind, two runs on the same test week: the **7-day model** (the handbook's
protocol, ``train.history_days 0``) and the **long model**, fitted on every day of the file
before the validation day (``--history-days``). Figures: wall and CPU seconds of the whole
``vigil train`` (reading, fitting, evaluating, exporting, MLflow), the group's peak RSS,
the fitting rows, and the test AP and card precision@100.

The world is the simulator's (``benchmarks/bench_simulate.py --rows 50000000``) with its
features (``vigil features``); ``--train-start`` places the protocol at the end of it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from vigil.stress.cgroup import Limits, parse_size, run_limited


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=Path, required=True, help="feature Parquet file")
    parser.add_argument("--kinds", nargs="+", default=["lightgbm", "mlp"])
    parser.add_argument("--train-start", default="2018-09-10")
    parser.add_argument("--history-days", type=int, default=162, help="long model's extra days")
    parser.add_argument("--mlp-epochs", type=int, default=2, help="long MLP's epochs")
    parser.add_argument("--memory", default="2GB")
    parser.add_argument("--cpus", type=float, default=1.0)
    parser.add_argument("--runs", type=Path, default=Path("/work/data/train-stream"))
    parser.add_argument("--skip-short", action="store_true", help="only the long models")
    parser.add_argument("--set", dest="extra", action="append", default=[], help="KEY=VALUE, both")
    return parser.parse_args()


def train_limited(
    args: argparse.Namespace, kind: str, name: str, overrides: list[str]
) -> dict[str, object]:
    """One ``vigil train --stream-features`` in its cgroup; its usage and test figures."""
    settings = [
        f"model.kind={kind}",
        f"train.train_start={args.train_start}",
        f"train.runs_dir={args.runs / 'runs'}",
        f"tracking.mlflow_uri=file:{args.runs / 'mlruns'}",
        *args.extra,
        *overrides,
    ]
    command = [sys.executable, "-m", "vigil", "train", "--stream-features", str(args.features)]
    for item in settings:
        command += ["--set", item]
    log = args.runs / f"{kind}-{name}.log"
    with log.open("w") as out:
        result = run_limited(
            command,
            Limits(parse_size(args.memory), args.cpus),
            name=f"train-{kind}",
            env=dict(os.environ),
            stdout=out,
            stderr=out,
        )
    figures: dict[str, object] = {"usage": result.as_dict()}
    if result.returncode == 0:
        run_dir = Path(log.read_text().strip().splitlines()[-1])
        summary = json.loads((run_dir / "metrics.json").read_text())
        figures["run"] = run_dir.name
        figures["test"] = summary["test"]
        figures["train_seconds"] = summary["train_seconds"]
        figures["fit_rows"] = _fit_rows(log)
        figures["sampled_rows"] = _sampled_rows(log)
    return figures


def _fit_rows(log: Path) -> int | None:
    for line in log.read_text().splitlines():
        if "training" in line and " rows" in line and "run " in line:
            return int(line.split(" on ")[-1].split()[0])
    return None


def _sampled_rows(log: Path) -> str | None:
    """LightGBM's fitting rows after the genuine sample (``fitting rows: N of M (...)``)."""
    for line in log.read_text().splitlines():
        if "fitting rows: " in line:
            return line.split("fitting rows: ")[-1]
    return None


def line(kind: str, name: str, figures: dict[str, object]) -> str:
    usage = figures["usage"]
    assert isinstance(usage, dict)
    head = (
        f"{kind:8s} {name:7s} wall {usage['wall_seconds']:7.1f} s"
        f"  CPU {usage['cpu_seconds']:7.1f} s  peak RSS {usage['peak_rss_bytes'] / 2**20:6,.0f} MB"
    )
    if "test" not in figures:
        return f"{head}  FAILED rc {usage['returncode']} (OOM kill: {usage['oom_killed']})"
    test = figures["test"]
    assert isinstance(test, dict)
    sampled = f" (LightGBM kept {figures['sampled_rows']})" if figures.get("sampled_rows") else ""
    return (
        f"{head}  fit rows {figures['fit_rows']:,}{sampled}"
        f"  test AP {test['average_precision']:.4f}  CP@100 {test['card_precision_at_k']:.4f}"
    )


def main() -> None:
    args = parse_args()
    args.runs.mkdir(parents=True, exist_ok=True)
    lines = []
    for kind in args.kinds:
        long = [f"train.history_days={args.history_days}"]
        if kind == "mlp":
            long.append(f"train.epochs={args.mlp_epochs}")
        plans = [("long", long)] + (
            [] if args.skip_short else [("7-day", ["train.history_days=0"])]
        )
        for name, overrides in plans:
            figures = train_limited(args, kind, name, overrides)
            lines.append(line(kind, name, figures))
            print(lines[-1], json.dumps(figures, default=str), flush=True)
    where = f"cgroup {args.memory}, {args.cpus:g} CPU"
    print(f"streamed training ({where}):\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
