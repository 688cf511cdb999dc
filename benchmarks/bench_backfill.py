"""Distributed feature backfill: single-node build vs the same buckets on Dask, Ray, Spark.

Builds the feature table of ``--source`` once with the single-node engine
(:func:`vigil.features.offline.build_feature_table`), then with
:func:`vigil.backfill.build_feature_table_distributed` on each engine asked for (a local
cluster of ``--workers`` processes each), checks every result equals the single-node table
exactly, and prints the wall times (cluster start-up apart). Ray and Spark are not project
dependencies: their runs need them installed (``pip install ray pyspark``; Spark needs Java)
and are how ADR 0021 chose Dask.

    .venv/bin/python benchmarks/bench_backfill.py --engines dask
    python benchmarks/bench_backfill.py --engines local dask ray spark --source PATH
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from vigil.backfill import Engine, build_feature_table_distributed, make_engine
from vigil.config import DEFAULT_CONFIG_PATH, load_settings
from vigil.features.offline import build_feature_table

T = TypeVar("T")
R = TypeVar("R")
HANDBOOK = Path(__file__).resolve().parents[2] / "shared/datasets/handbook"


def _call(function: Callable[[T], R], item: T) -> R:
    """``function(item)``: Ray's remote functions must be plain functions, not partials."""
    return function(item)


class RayEngine:
    """The same tasks as Ray remote functions on a local Ray instance."""

    def __init__(self, workers: int) -> None:
        import ray

        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        self._ray = ray

    def map(self, function: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """One remote task per item."""
        remote = self._ray.remote(num_cpus=1)(_call)
        return list(self._ray.get([remote.remote(function, item) for item in items]))

    def close(self) -> None:
        """Stop Ray."""
        self._ray.shutdown()


class SparkEngine:
    """The same tasks as one RDD partition each on a local Spark (``local[workers]``)."""

    def __init__(self, workers: int) -> None:
        from pyspark.sql import SparkSession

        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"  # loopback only, never the host's address
        self._spark = (
            SparkSession.builder.master(f"local[{workers}]")
            .config("spark.ui.enabled", "false")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .getOrCreate()
        )

    def map(self, function: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """One partition per item, results collected in order."""
        rdd = self._spark.sparkContext.parallelize(list(items), len(items))
        return list(rdd.map(function).collect())

    def close(self) -> None:
        """Stop Spark."""
        self._spark.stop()


def open_engine(name: str, workers: int) -> Engine:
    """An engine by name (ray and spark only here, for the measurement)."""
    if name == "ray":
        return RayEngine(workers)
    if name == "spark":
        return SparkEngine(workers)
    return make_engine(name, workers)


def comparison(result: pd.DataFrame, reference: pd.DataFrame) -> str:
    """ "equal to single-node" (values, dtypes, columns, order), else what differs."""
    if result.equals(reference) and result.dtypes.equals(reference.dtypes):
        return "equal to single-node"
    if list(result.columns) != list(reference.columns) or len(result) != len(reference):
        return "DIFFERENT columns or rows"
    cells = int((result != reference).to_numpy().sum())
    return f"DIFFERENT: {cells} cells"


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source", type=Path, default=HANDBOOK / "transactions_2018-04-01_2018-08-14.parquet"
    )
    parser.add_argument("--engines", nargs="+", default=["dask"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--hash-buckets", type=int, default=2)
    parser.add_argument("--time-slices", type=int, default=2)
    return parser.parse_args()


def main() -> None:
    """Single-node build, then each engine; the headline last."""
    args = parse_args()
    features = load_settings(DEFAULT_CONFIG_PATH, environ={}).features
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as folder:
        single = Path(folder) / "single.parquet"
        started = time.perf_counter()
        build_feature_table(features, args.source, single, progress=False)
        figures["single-node"] = time.perf_counter() - started
        print(f"single-node build: {figures['single-node']:.1f} s", flush=True)
        reference = pd.read_parquet(single)
        for name in args.engines:
            started = time.perf_counter()
            engine = open_engine(name, args.workers)
            startup = time.perf_counter() - started
            try:
                out = Path(folder) / f"{name}.parquet"
                summary = build_feature_table_distributed(
                    features, args.source, out, engine, args.hash_buckets, args.time_slices
                )
            finally:
                engine.close()
            figures[name] = summary.seconds
            print(
                f"{name}: start-up {startup:.1f} s, {summary.buckets} buckets + "
                f"{summary.slices} slices in {summary.seconds:.1f} s, "
                f"{comparison(pd.read_parquet(out), reference)}",
                flush=True,
            )
    print(
        f"feature backfill of {len(reference):,} rows ({args.workers} workers): "
        + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in figures.items())
    )


if __name__ == "__main__":
    main()
