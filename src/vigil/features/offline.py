"""Offline feature table: the feature SQL run by DuckDB over Parquet or an in-memory frame."""

from __future__ import annotations

import itertools
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow.parquet as pq
from tqdm import tqdm

from vigil.config import FeaturesConfig
from vigil.data import schema
from vigil.features.definitions import feature_names
from vigil.features.sql import (
    assemble_sql,
    base_sql,
    check_config,
    customer_sql,
    feature_sql,
    terminal_sql,
)

logger = logging.getLogger(__name__)

# Working-set estimate per transaction in one bucket's window query (measured, see
# docs/benchmarks.md); the memory limit divided by it gives the rows per bucket.
BYTES_PER_ROW = 400
ARROW_BATCH_ROWS = 256_000

PASSTHROUGH = (schema.TX_FRAUD, schema.TX_FRAUD_SCENARIO)
REQUIRED = (*schema.TRANSACTION_COLUMNS,)


@dataclass(frozen=True)
class FeatureBuildSummary:
    """What :func:`build_feature_table` wrote."""

    output_path: Path
    rows: int
    columns: list[str]
    seconds: float
    buckets: int


def connect(config: FeaturesConfig, temp_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-process DuckDB with the configured memory limit, threads and spill directory."""
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{config.duckdb_memory_limit}'")
    con.execute(f"SET threads = {int(config.duckdb_threads)}")
    con.execute("SET TimeZone = 'UTC'")  # time-zone-aware inputs: hours and days in UTC
    if temp_dir is not None:
        con.execute(f"SET temp_directory = '{temp_dir}'")
    con.execute("SET preserve_insertion_order = false")
    return con


def source_relation(source: Path) -> str:
    """DuckDB table expression reading a day-partitioned directory or one Parquet file."""
    if source.is_dir():
        return f"read_parquet('{source}/**/*.parquet', hive_partitioning = true)"
    if source.suffix == ".parquet" and source.exists():
        return f"read_parquet('{source}')"
    raise FileNotFoundError(f"no Parquet data at {source} (expected a directory or a .parquet)")


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> set[str]:
    """Lower-cased column names of a relation (DuckDB identifiers are case-insensitive)."""
    described = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    return {str(row[0]).lower() for row in described}


def _check_columns(columns: set[str], where: str) -> tuple[bool, list[str]]:
    """Raise on missing transaction columns; return (has labels, passthrough columns)."""
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise ValueError(f"{where} lacks required columns {missing}")
    passthrough = [c for c in PASSTHROUGH if c in columns]
    has_fraud = schema.TX_FRAUD in columns
    if not has_fraud:
        logger.warning("%s has no %s: terminal and customer risk are 0", where, schema.TX_FRAUD)
    return has_fraud, passthrough


def compute_features_frame(config: FeaturesConfig, transactions: pd.DataFrame) -> pd.DataFrame:
    """Features for an in-memory frame of transactions (ids, passthrough labels, features)."""
    has_fraud, passthrough = _check_columns(
        {c.lower() for c in transactions.columns}, "transactions frame"
    )
    con = connect(config)
    try:
        con.register("transactions_frame", transactions)
        sql = feature_sql(config, "transactions_frame", has_fraud, passthrough)
        return con.execute(sql).df()
    finally:
        con.close()


def _memory_bytes(limit: str) -> int:
    """``'2GB'`` -> bytes (DuckDB's units, decimal or binary)."""
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20}
    units |= {"GIB": 2**30, "TIB": 2**40, "B": 1}
    text = limit.strip().upper().replace(" ", "")
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * units[unit])
    raise ValueError(f"unreadable memory limit {limit!r}, expected e.g. '2GB'")


def plan_buckets(rows: int, config: FeaturesConfig, rows_per_bucket: int | None) -> int:
    """Number of hash buckets so that one bucket's window query fits the memory limit."""
    per_bucket = rows_per_bucket or _memory_bytes(config.duckdb_memory_limit) // BYTES_PER_ROW
    return max(1, -(-rows // max(per_bucket, 1)))


def _time_slices(con: duckdb.DuckDBPyConnection, buckets: int) -> list[tuple[int, int]]:
    """``buckets`` half-open ``[lo, hi)`` ranges of ``ts`` with about equal row counts."""
    edges = con.execute(
        "SELECT quantile_disc(ts, [i / $n FOR i IN range(1, $n)]), min(ts), max(ts) FROM base",
        {"n": buckets},
    ).fetchone()
    if edges is None or edges[1] is None:
        return []
    inner = sorted(set(edges[0])) if buckets > 1 else []
    bounds = [int(edges[1]), *(int(e) for e in inner if e > edges[1]), int(edges[2]) + 1]
    return list(itertools.pairwise(bounds))


def _write_parts(
    con: duckdb.DuckDBPyConnection,
    config: FeaturesConfig,
    work: Path,
    buckets: int,
    bar: tqdm[Any],
) -> None:
    """Customer features per customer-hash bucket, terminal features per terminal bucket."""
    for kind, entity, part_sql in (
        ("customers", schema.CUSTOMER_ID, customer_sql),
        ("terminals", schema.TERMINAL_ID, terminal_sql),
    ):
        (work / kind).mkdir()
        for bucket in range(buckets):
            where = f"hash({entity}) % {buckets} = {bucket}"
            query = f"{part_sql(config, 'base', where)} ORDER BY ts"
            con.execute(f"COPY ({query}) TO '{work / kind / f'{bucket}.parquet'}' (FORMAT parquet)")
            bar.update(1)


def _assemble(
    con: duckdb.DuckDBPyConnection,
    config: FeaturesConfig,
    work: Path,
    passthrough: list[str],
    output_path: Path,
    slices: list[tuple[int, int]],
    bar: tqdm[Any],
) -> int:
    """Join the parts slice by slice in time order, streaming into one Parquet file."""
    rows = 0
    customers = f"SELECT * FROM read_parquet('{work / 'customers'}/*.parquet')"
    terminals = f"SELECT * FROM read_parquet('{work / 'terminals'}/*.parquet')"
    # Streamed batches keep the ORDER BY only when insertion order is preserved.
    con.execute("SET preserve_insertion_order = true")
    writer: pq.ParquetWriter | None = None
    try:
        for lo, hi in slices:
            where = " AND ".join(f"{a}.ts >= {lo} AND {a}.ts < {hi}" for a in "bct")
            base = "SELECT * FROM base"
            query = assemble_sql(config, base, customers, terminals, passthrough, where)
            reader = con.sql(query).to_arrow_reader(ARROW_BATCH_ROWS)
            for batch in reader:
                if writer is None:
                    writer = pq.ParquetWriter(output_path, batch.schema)
                writer.write_batch(batch)
                rows += batch.num_rows
            bar.update(1)
    finally:
        if writer is not None:
            writer.close()
    return rows


def build_feature_table(
    config: FeaturesConfig,
    source: Path,
    output_path: Path,
    progress: bool = True,
    rows_per_bucket: int | None = None,
) -> FeatureBuildSummary:
    """Compute features for every transaction under ``source`` and write them to Parquet.

    The work is split into hash buckets (customers for customer features, terminals for
    terminal features), each a separate query written to Parquet, then joined in time
    slices, so memory stays within ``duckdb_memory_limit`` whatever the data size.
    """
    check_config(config)
    started = time.perf_counter()
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vigil-features-", dir=output_path.parent) as tmp:
        work = Path(tmp)
        con = connect(config, work / "spill")
        try:
            relation = source_relation(source)
            has_fraud, passthrough = _check_columns(_columns(con, relation), str(source))
            con.execute(f"CREATE VIEW base AS {base_sql(relation, has_fraud, passthrough)}")
            total = con.execute("SELECT count(*) FROM base").fetchone()
            n_rows = int(total[0]) if total else 0
            if n_rows == 0:
                raise ValueError(f"{source} holds no transactions")
            buckets = plan_buckets(n_rows, config, rows_per_bucket)
            logger.info("features for %d rows from %s in %d buckets", n_rows, source, buckets)
            slices = _time_slices(con, buckets)
            steps = 2 * buckets + len(slices)
            with tqdm(total=steps, desc="features", unit="step", disable=not progress) as bar:
                _write_parts(con, config, work, buckets, bar)
                written = _assemble(con, config, work, passthrough, output_path, slices, bar)
        finally:
            con.close()
    if written != n_rows:
        raise RuntimeError(f"feature table has {written} rows for {n_rows} transactions")
    seconds = time.perf_counter() - started
    logger.info("wrote %d feature rows to %s in %.1f s", written, output_path, seconds)
    return FeatureBuildSummary(output_path, written, feature_names(config), seconds, buckets)
