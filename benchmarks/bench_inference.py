"""Inference benchmark: ONNX Runtime single-row latency, batch scoring rows/s, int8 vs fp32.

Scores simulated transactions with a trained model (``--model runs/<run>/model.onnx``) or,
when none is given, a generated MLP-shaped graph (scaling, two hidden layers, sigmoid) built
with ``onnx.helper``. Reports p50/p99 latency of one row (``OnnxScorer.score`` on one row and a
full ``decide`` with reason codes), batch rows/s for features + inference and for the whole
``vigil predict`` path, and the speed and score difference of an int8 dynamically quantised
copy of the model.

    .venv/bin/python benchmarks/bench_inference.py
    .venv/bin/python benchmarks/bench_inference.py --customers 5000 --days 60 --model M.onnx
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from onnxruntime.quantization import QuantType, quantize_dynamic

from _results import default_path, write_results  # benchmarks/ is the script's folder
from vigil.config import DEFAULT_CONFIG_PATH, Settings, load_settings
from vigil.data.simulate import simulate_transactions
from vigil.features.definitions import feature_names
from vigil.features.offline import compute_features_frame
from vigil.inference.batch import feature_matrix, predict_file, score_in_chunks
from vigil.inference.decision import decide
from vigil.inference.scorer import OnnxScorer
from vigil.logs import configure_logging

TESTS_DIR = Path(__file__).resolve().parents[1] / "tests"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; the defaults finish in well under two minutes on 2 cores."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH)
    parser.add_argument("--model", type=Path, default=None, help="trained ONNX model")
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--latency-calls", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5, help="batch timings: best of")
    parser.add_argument(
        "--results", type=Path, default=default_path("bench_inference"), help="JSON results file"
    )
    return parser.parse_args(argv)


def percentiles_us(fn: Callable[[int], object], calls: int) -> tuple[float, float]:
    """p50 and p99 wall time of ``fn(i)`` in microseconds, after a warm-up."""
    for i in range(min(1000, calls)):
        fn(i)
    timings = np.empty(calls)
    for i in range(calls):
        start = time.perf_counter_ns()
        fn(i)
        timings[i] = time.perf_counter_ns() - start
    p50, p99 = np.percentile(timings / 1000.0, [50, 99])
    return float(p50), float(p99)


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` runs of ``fn``."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def generated_model(settings: Settings, features: pd.DataFrame, path: Path) -> Path:
    """An untrained MLP-shaped graph with real scaling statistics (stand-in for a trained one)."""
    sys.path.insert(0, str(TESTS_DIR))  # the test model factory, shared rather than copied
    from onnx_factory import make_metadata, mlp_model, save

    names = feature_names(settings.features)
    values = features[names].to_numpy(np.float64)
    scales = np.where(values.std(axis=0) > 0, values.std(axis=0), 1.0)
    metadata = make_metadata(names, values.mean(axis=0).tolist(), model_kind="mlp")
    model = mlp_model(metadata, settings.model.hidden_sizes, scales.tolist())
    return save(model, path)


def latency(scorer: OnnxScorer, x: np.ndarray, calls: int) -> dict[str, tuple[float, float]]:
    """Single-row latency of the bare scorer and of a full decision with 3 reason codes."""
    rows = x[: min(len(x), 4096)]
    ids = [0]
    return {
        "score": percentiles_us(lambda i: scorer.score(rows[i % len(rows), np.newaxis]), calls),
        "decide+reasons": percentiles_us(
            lambda i: decide(scorer, ids, rows[i % len(rows), np.newaxis], 3, "all"), calls
        ),
    }


def batch_figures(
    settings: Settings,
    transactions: pd.DataFrame,
    model_path: Path,
    x: np.ndarray,
    features_s: float,
    args: argparse.Namespace,
) -> float:
    """Print batch rows/s (inference by threads, features, both, ``vigil predict``)."""
    n, batch = len(x), settings.inference.batch_size
    scorers = {threads: OnnxScorer.load(model_path, threads) for threads in (1, 2)}
    inference_s = {
        threads: best_seconds(
            lambda s=scorer: score_in_chunks(s, x, batch, progress=False), args.repeats
        )
        for threads, scorer in scorers.items()
    }
    for threads, seconds in inference_s.items():
        print(f"fp32 batch inference ({threads} thread(s)): {n / seconds:,.0f} rows/s")
    duckdb_threads = settings.features.duckdb_threads
    print(f"features (DuckDB, {duckdb_threads} threads): {n / features_s:,.0f} rows/s")
    combined = n / (features_s + inference_s[1])
    print(f"batch features + inference: {combined:,.0f} rows/s")
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "transactions.parquet"
        transactions.drop(columns=["tx_fraud", "tx_fraud_scenario"]).to_parquet(source)
        end_to_end_s = best_seconds(
            lambda: predict_file(
                settings,
                source,
                Path(tmp) / "scores.parquet",
                model_path,
                progress=False,
                cold_features=True,  # the same work as with history; only its speed is timed
            ),
            args.repeats,
        )
    print(
        f"vigil predict end to end (read, validate, features, score, write): "
        f"{n / end_to_end_s:,.0f} rows/s"
    )
    return combined


def int8_figures(
    scorer: OnnxScorer, x: np.ndarray, batch: int, args: argparse.Namespace
) -> dict[str, float]:
    """Quantise the model (int8 dynamic), print its speed and score difference."""
    with tempfile.TemporaryDirectory() as tmp:
        int8_path = Path(tmp) / "model.int8.onnx"
        quantize_dynamic(scorer.path, int8_path, weight_type=QuantType.QInt8)
        int8 = OnnxScorer.load(int8_path)
        int8_bytes = int8_path.stat().st_size
    int8_latency = latency(int8, x, args.latency_calls)
    for name, (p50, p99) in int8_latency.items():
        print(f"int8 single-row {name}: p50 {p50:.1f} us, p99 {p99:.1f} us")
    int8_s = best_seconds(lambda: score_in_chunks(int8, x, batch, progress=False), args.repeats)
    fp32_s = best_seconds(lambda: score_in_chunks(scorer, x, batch, progress=False), args.repeats)
    print(
        f"int8 batch inference (1 thread): {len(x) / int8_s:,.0f} rows/s "
        f"(fp32 {len(x) / fp32_s:,.0f})"
    )
    fp32_scores = score_in_chunks(scorer, x, batch, progress=False)
    int8_scores = score_in_chunks(int8, x, batch, progress=False)
    diff = np.abs(fp32_scores - int8_scores)
    threshold = scorer.metadata.threshold
    flips = np.mean((fp32_scores >= threshold) != (int8_scores >= threshold))
    print(
        f"int8 vs fp32 |score difference|: max {diff.max():.2e}, mean {diff.mean():.2e}; "
        f"labels changed at threshold {threshold:.3f}: {flips:.4%}"
    )
    return {
        "int8_model_bytes": int8_bytes,
        "int8_score_one_p50_us": int8_latency["score"][0],
        "int8_score_one_p99_us": int8_latency["score"][1],
        "int8_batch_rows_per_s": len(x) / int8_s,
        "fp32_batch_rows_per_s": len(x) / fp32_s,
        "int8_max_abs_diff": float(diff.max()),
        "int8_label_flip_share": float(flips),
    }


def main(argv: list[str] | None = None) -> None:
    """Run every measurement and print the figures, the headline last."""
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
    transactions = simulate_transactions(settings.data)
    print(
        f"{len(transactions)} simulated transactions ({args.customers} customers, {args.days} days)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        features = compute_features_frame(settings.features, transactions)
        features_s = best_seconds(
            lambda: compute_features_frame(settings.features, transactions), args.repeats
        )
        model_path = args.model or generated_model(settings, features, Path(tmp) / "mlp.onnx")
        scorer = OnnxScorer.load(model_path)
        x = feature_matrix(features, scorer.feature_names)
        print(f"model {scorer.model_version} ({scorer.metadata.model_kind}, {model_path})")
        fp32 = latency(scorer, x, args.latency_calls)
        for name, (p50, p99) in fp32.items():
            print(f"fp32 single-row {name}: p50 {p50:.1f} us, p99 {p99:.1f} us")
        combined = batch_figures(settings, transactions, model_path, x, features_s, args)
        int8 = int8_figures(scorer, x, settings.inference.batch_size, args)
        model_bytes = Path(model_path).stat().st_size
    max_diff = int8["int8_max_abs_diff"]
    p50, p99 = fp32["score"]
    figures = {
        "fp32_model_bytes": model_bytes,
        "fp32_score_one_p50_us": p50,
        "fp32_score_one_p99_us": p99,
        "fp32_decide_p99_us": fp32["decide+reasons"][1],
        "features_plus_inference_rows_per_s": combined,
        **int8,
    }
    write_results("bench_inference", figures, args.results)
    print(
        f"ONNX Runtime single-row p50 {p50:.1f} us / p99 {p99:.1f} us; batch features + "
        f"inference {combined:,.0f} rows/s; int8 max |diff| {max_diff:.1e}"
    )


if __name__ == "__main__":
    main()
