"""Offline feature table: the feature SQL run by DuckDB over Parquet or an in-memory frame."""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from vigil.config import FeaturesConfig
from vigil.data import schema
from vigil.features.definitions import feature_names
from vigil.features.sql import feature_sql

logger = logging.getLogger(__name__)

PASSTHROUGH = (schema.TX_FRAUD, schema.TX_FRAUD_SCENARIO)
REQUIRED = (*schema.TRANSACTION_COLUMNS,)


@dataclass(frozen=True)
class FeatureBuildSummary:
    """What :func:`build_feature_table` wrote."""

    output_path: Path
    rows: int
    columns: list[str]
    seconds: float
    chunks: int


def connect(config: FeaturesConfig, temp_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-process DuckDB with the configured memory limit, threads and spill directory."""
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{config.duckdb_memory_limit}'")
    con.execute(f"SET threads = {int(config.duckdb_threads)}")
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


def build_feature_table(
    config: FeaturesConfig,
    source: Path,
    output_path: Path,
    progress: bool = True,
) -> FeatureBuildSummary:
    """Compute features for every transaction under ``source`` and write them to Parquet."""
    started = time.perf_counter()
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vigil-duckdb-", dir=output_path.parent) as spill:
        con = connect(config, Path(spill))
        try:
            relation = source_relation(source)
            has_fraud, passthrough = _check_columns(_columns(con, relation), str(source))
            sql = feature_sql(config, relation, has_fraud, passthrough)
            con.execute(f"COPY ({sql}) TO '{output_path}' (FORMAT parquet)")
            rows = con.execute(f"SELECT count(*) FROM read_parquet('{output_path}')").fetchone()
        finally:
            con.close()
    seconds = time.perf_counter() - started
    n_rows = int(rows[0]) if rows else 0
    logger.info("wrote %d feature rows to %s in %.1f s", n_rows, output_path, seconds)
    return FeatureBuildSummary(output_path, n_rows, feature_names(config), seconds, 1)
