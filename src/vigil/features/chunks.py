"""Transactions in time order, chunk by chunk: the offline build's reader.

A source is one Parquet file or a directory of them (day partitions). Files are grouped into
chunks whose ``tx_datetime`` ranges (from the Parquet statistics) do not overlap, so that
sorting each chunk alone gives the global tie order ``(ts, transaction_id)``. A source whose
chunks would not fit in memory (one large unsorted file) is first re-partitioned by day.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vigil.data import schema

logger = logging.getLogger(__name__)

REQUIRED = schema.TRANSACTION_COLUMNS
PASSTHROUGH = (schema.TX_FRAUD, schema.TX_FRAUD_SCENARIO)
DAY_COLUMN = "vigil_day"


@dataclass(frozen=True)
class SourceFile:
    """One Parquet file: row count, ``tx_datetime`` range and id ranges (None if unknown)."""

    path: Path
    rows: int
    first: int | None
    last: int | None
    customers: tuple[int, int] | None = None
    terminals: tuple[int, int] | None = None


@dataclass(frozen=True)
class Columns:
    """The source's column names (any case) for the lower-case names the build uses."""

    names: dict[str, str]

    @classmethod
    def of(cls, schema_names: Sequence[str], where: str) -> Columns:
        """Map the required and passthrough columns; raise when a required one is missing."""
        lower = {name.lower(): name for name in schema_names}
        missing = [c for c in REQUIRED if c not in lower]
        if missing:
            raise ValueError(f"{where} lacks required columns {missing}")
        wanted = [*REQUIRED, *(c for c in PASSTHROUGH if c in lower)]
        return cls({c: lower[c] for c in wanted})

    @property
    def passthrough(self) -> list[str]:
        """Label columns copied to the output (those present)."""
        return [c for c in PASSTHROUGH if c in self.names]

    @property
    def has_fraud(self) -> bool:
        """Whether labels are present (else every risk feature is 0)."""
        return schema.TX_FRAUD in self.names


def source_files(source: Path) -> list[Path]:
    """The Parquet files of ``source`` (a file or a directory searched recursively)."""
    if source.is_dir():
        files = sorted(source.rglob("*.parquet"))
        if files:
            return files
    elif source.suffix == ".parquet" and source.exists():
        return [source]
    raise FileNotFoundError(f"no Parquet data at {source} (expected a directory or a .parquet)")


def _timestamp_us(value: object) -> int:
    return int(pa.scalar(value, pa.timestamp("us")).value)


def _range(meta: pq.FileMetaData, index: int) -> tuple[object, object] | None:
    """Min and max of one column over every row group, None without statistics."""
    lows, highs = [], []
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(index).statistics
        if stats is None or not stats.has_min_max or stats.min is None or stats.max is None:
            return None
        lows.append(stats.min)
        highs.append(stats.max)
    return (min(lows), max(highs)) if lows else None


def describe(path: Path, columns: Columns) -> SourceFile:
    """Row count, time range and id ranges of one file, from its footer."""
    meta = pq.ParquetFile(path).metadata
    names = meta.schema.to_arrow_schema().names
    ranges = {c: _range(meta, names.index(columns.names[c])) for c in REQUIRED[:4]}
    times = ranges[schema.TX_DATETIME]
    ids: dict[str, tuple[int, int] | None] = {}
    for c in (schema.CUSTOMER_ID, schema.TERMINAL_ID):
        found = ranges[c]
        if found is not None and isinstance(found[0], int) and isinstance(found[1], int):
            ids[c] = (found[0], found[1])
        else:
            ids[c] = None
    return SourceFile(
        path,
        meta.num_rows,
        None if times is None else _timestamp_us(times[0]),
        None if times is None else _timestamp_us(times[1]),
        ids[schema.CUSTOMER_ID],
        ids[schema.TERMINAL_ID],
    )


def plan_chunks(files: list[SourceFile]) -> list[list[SourceFile]] | None:
    """Files grouped into time-disjoint chunks in time order; None when a range is unknown."""
    files = [f for f in files if f.rows]
    if any(f.first is None for f in files):
        return None
    ordered = sorted(files, key=lambda f: (f.first, f.last))
    chunks: list[list[SourceFile]] = []
    end = None
    for f in ordered:
        assert f.first is not None and f.last is not None
        if chunks and end is not None and f.first <= end:  # overlap or a shared instant
            chunks[-1].append(f)
            end = max(end, f.last)
        else:
            chunks.append([f])
            end = f.last
    return chunks


def repartition_by_day(files: list[Path], columns: Columns, out_dir: Path, con_sql: str) -> Path:
    """Rewrite ``files`` as one Parquet directory per day (DuckDB, memory-bounded)."""
    names = ", ".join(f'"{c}"' for c in columns.names.values())
    paths = ", ".join(f"'{p}'" for p in files)
    day = f'CAST(CAST("{columns.names[schema.TX_DATETIME]}" AS TIMESTAMP) AS DATE)'
    con = duckdb.connect()
    try:
        con.execute(con_sql)
        con.execute(
            f"COPY (SELECT {names}, {day} AS {DAY_COLUMN} FROM read_parquet([{paths}])) "
            f"TO '{out_dir}' (FORMAT parquet, PARTITION_BY ({DAY_COLUMN}))"
        )
    finally:
        con.close()
    return out_dir


def _as_us(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Timestamps as naive UTC microseconds (time-zone-aware values are converted to UTC)."""
    if pa.types.is_timestamp(column.type):
        return column.cast(pa.timestamp("us", tz=column.type.tz)).cast(pa.timestamp("us"))
    return column.cast(pa.timestamp("us"))


def typed(table: pa.Table, columns: Columns) -> pa.Table:
    """The build's columns under their lower-case names and types, sorted by tie order."""
    kinds: dict[str, pa.DataType] = {
        schema.TRANSACTION_ID: pa.int64(),
        schema.CUSTOMER_ID: pa.int64(),
        schema.TERMINAL_ID: pa.int64(),
        schema.TX_AMOUNT: pa.float64(),
    }
    arrays, names = [], []
    for name, actual in columns.names.items():
        column = table.column(actual)
        if name == schema.TX_DATETIME:
            column = _as_us(column)
        else:
            column = column.cast(kinds.get(name, pa.int8()))
        arrays.append(column)
        names.append(name)
    result = pa.Table.from_arrays(arrays, names=names)
    ts = ts_us(result)
    ids = result.column(schema.TRANSACTION_ID).to_numpy()
    order = np.lexsort((ids, ts))
    if np.any(order[1:] < order[:-1]):
        result = result.take(order)
    return result


def ts_us(table: pa.Table) -> np.ndarray:
    """``tx_datetime`` as int64 epoch microseconds."""
    return table.column(schema.TX_DATETIME).cast(pa.int64()).to_numpy()


def read_chunk(
    chunk: list[SourceFile], columns: Columns, only: list[str] | None = None
) -> pa.Table:
    """One chunk's rows, typed and sorted (``only``: a subset of the build's columns)."""
    wanted = Columns({k: v for k, v in columns.names.items() if only is None or k in only})
    tables = [pq.read_table(f.path, columns=list(wanted.names.values())) for f in chunk]
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
    if only is not None and schema.TRANSACTION_ID not in only:
        return typed_unsorted(table, wanted)
    return typed(table, wanted)


def typed_unsorted(table: pa.Table, columns: Columns) -> pa.Table:
    """Typed columns without the tie-order sort (for per-chunk statistics)."""
    arrays = []
    for name, actual in columns.names.items():
        column = table.column(actual)
        arrays.append(_as_us(column) if name == schema.TX_DATETIME else column.cast(pa.int64()))
    return pa.Table.from_arrays(arrays, names=list(columns.names))


def iter_chunks(
    chunks: list[list[SourceFile]], columns: Columns, only: list[str] | None = None
) -> Iterator[pa.Table]:
    """Every chunk in time order."""
    for chunk in chunks:
        yield read_chunk(chunk, columns, only)
