"""Scoring cost of two or more ONNX models, measured side by side in CPU time.

Each model scores the same simulated feature rows (``bench_inference``'s world) through
``OnnxScorer`` in interleaved rounds (A, B, A, B, ...), so load on a shared machine hits every
model alike. Per model: CPU microseconds per call of a one-row ``score``, of a one-row
``decide`` with reason codes (the occlusion of every feature: what a flagged transaction
costs), and per row of a 4,096-row batch; the median over the rounds.

    .venv/bin/python benchmarks/bench_model_cost.py runs/A/model.onnx runs/B/model.onnx
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from _results import default_path, write_results  # benchmarks/ is the script's folder
from vigil.config import DEFAULT_CONFIG_PATH, load_settings
from vigil.data.simulate import simulate_transactions
from vigil.features.offline import compute_features_frame
from vigil.inference.batch import feature_matrix
from vigil.inference.decision import decide
from vigil.inference.scorer import OnnxScorer
from vigil.logs import configure_logging

BATCH_ROWS = 4096


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; the defaults take about a minute for two models on 2 cores."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+", help="ONNX models to compare")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--calls", type=int, default=2000, help="one-row calls per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--results", type=Path, default=default_path("bench_model_cost"), help="JSON results"
    )
    return parser.parse_args(argv)


def cpu_us_per(fn: Callable[[int], object], calls: int) -> float:
    """Process CPU microseconds per call of ``fn(i)``, ``i`` in ``range(calls)``."""
    start = time.process_time_ns()
    for i in range(calls):
        fn(i)
    return (time.process_time_ns() - start) / 1000.0 / calls


def one_round(scorer: OnnxScorer, x: np.ndarray, calls: int) -> dict[str, float]:
    """One round of the three measurements for one model."""
    rows = x[:BATCH_ROWS]
    batches = max(1, calls // 200)
    return {
        "score_one_cpu_us": cpu_us_per(
            lambda i: scorer.score(rows[i % len(rows), np.newaxis]), calls
        ),
        "decide_reasons_one_cpu_us": cpu_us_per(
            lambda i: decide(scorer, [0], rows[i % len(rows), np.newaxis], 3, "all"), calls // 4
        ),
        "batch_cpu_us_per_row": cpu_us_per(lambda _: scorer.score(rows), batches) / len(rows),
    }


def main(argv: list[str] | None = None) -> None:
    """Measure every model in interleaved rounds and print the medians."""
    args = parse_args(argv)
    configure_logging()
    logging.getLogger("vigil").setLevel(logging.WARNING)  # figures only
    settings = load_settings(
        args.config,
        [
            f"data.n_customers={args.customers}",
            f"data.n_terminals={2 * args.customers}",
            f"data.n_days={args.days}",
        ],
        environ=os.environ,
    )
    features = compute_features_frame(settings.features, simulate_transactions(settings.data))
    scorers = [OnnxScorer.load(path) for path in args.models]
    matrices = [feature_matrix(features, scorer.feature_names) for scorer in scorers]
    for scorer, x in zip(scorers, matrices, strict=True):
        one_round(scorer, x, min(200, args.calls))  # warm-up
    rounds: list[list[dict[str, float]]] = [[] for _ in scorers]
    for _ in range(args.rounds):
        for index, (scorer, x) in enumerate(zip(scorers, matrices, strict=True)):
            rounds[index].append(one_round(scorer, x, args.calls))
    figures: dict[str, float] = {}
    for index, (scorer, path) in enumerate(zip(scorers, args.models, strict=True)):
        medians = {k: float(np.median([r[k] for r in rounds[index]])) for k in rounds[index][0]}
        kind = scorer.metadata.model_kind
        print(
            f"{kind} ({path}, {path.stat().st_size:,} bytes): one-row score "
            f"{medians['score_one_cpu_us']:.1f} us CPU, one-row decide + reasons "
            f"{medians['decide_reasons_one_cpu_us']:.1f} us, batch "
            f"{medians['batch_cpu_us_per_row']:.2f} us/row"
        )
        figures |= {f"{index}_{kind}_{key}": value for key, value in medians.items()}
        figures[f"{index}_{kind}_model_bytes"] = path.stat().st_size
    write_results("bench_model_cost", figures, args.results)


if __name__ == "__main__":
    main()
