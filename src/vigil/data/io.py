"""Read transactions from every supported layout into Vigil's schema; write day partitions.

Layouts read by :func:`read_transactions`:

- a CSV file or a Parquet file (Vigil's or the handbook's column names);
- a directory of Parquet files, e.g. Vigil's ``tx_date=YYYY-MM-DD/part-0.parquet`` dataset;
- the handbook's published layout: a directory of daily ``YYYY-MM-DD.pkl`` pickled frames
  (pickles run code when loaded: read only trusted files).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from vigil.data import schema
from vigil.data.contracts import (
    exact_integers,
    naive_utc_times,
    plain_numbers,
    plain_times,
    validate_transactions,
)
from vigil.data.transaction import from_text

logger = logging.getLogger(__name__)

HANDBOOK_DERIVED_COLUMNS = ("TX_TIME_SECONDS", "TX_TIME_DAYS")
PARTITION_FORMAT = "%Y-%m-%d"


class DataFormatError(ValueError):
    """A file or directory that is not a readable transaction dataset."""


def _read_parquet_files(files: list[Path]) -> pd.DataFrame:
    tables = [pq.read_table(f) for f in files]
    # Partition directories may carry the key as a column; the date is in tx_datetime anyway.
    tables = [
        t.drop_columns([schema.TX_DATE]) if schema.TX_DATE in t.column_names else t for t in tables
    ]
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowInvalid as error:
        raise DataFormatError(f"Parquet files disagree on their schema: {error}") from None
    return table.to_pandas()


def _read_pickle_directory(path: Path) -> pd.DataFrame:
    pickles = sorted(path.glob("*.pkl"))
    if pickles:
        logger.info(
            "reading %d pickled daily frames from %s (trusted input only)", len(pickles), path
        )
        return pd.concat([pd.read_pickle(p) for p in pickles], ignore_index=True)
    raise DataFormatError(f"{path} holds no *.parquet files and no daily *.pkl files")


CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")


def file_suffix(path: Path) -> str:
    """``.csv.gz`` for a compressed CSV, else the last suffix (lower case)."""
    name = path.name.lower()
    return ".csv.gz" if name.endswith(".csv.gz") else path.suffix.lower()


def read_csv(source: Path | bytes) -> pd.DataFrame:
    """A CSV file or upload whose header names each column once (:class:`DataFormatError`
    otherwise: pandas would keep both cells, renaming the second ``name.1``)."""

    def opened() -> Path | io.BytesIO:
        return io.BytesIO(source) if isinstance(source, bytes) else source

    header = pd.read_csv(opened(), header=None, nrows=1, dtype=str, keep_default_na=False)
    _check_columns(header.iloc[0].tolist() if len(header) else [])
    return pd.read_csv(opened())


def _check_columns(names: Iterable[str]) -> None:
    repeated = schema.repeated_columns(names)
    if repeated:
        raise DataFormatError(
            f"column(s) {repeated} named more than once (a name's case and the spaces around "
            "it do not count): which value counts would be a guess"
        )


def read_table(path: Path) -> pd.DataFrame | None:
    """A CSV (``.csv``, ``.csv.gz``) or Parquet file, or a directory of Parquet files, as
    written (no schema mapping); ``None`` for any other layout."""
    if path.is_dir():
        files = sorted(path.rglob("*.parquet"))
        return _read_parquet_files(files) if files else None
    suffix = file_suffix(path)
    if suffix in CSV_SUFFIXES:
        return read_csv(path)
    if suffix in PARQUET_SUFFIXES:
        return pd.read_parquet(path)
    return None


def _read_raw(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise DataFormatError(f"{path} does not exist")
    table = read_table(path)
    if table is not None:
        return table
    if path.is_dir():
        return _read_pickle_directory(path)
    suffix = file_suffix(path)
    if suffix == ".pkl":
        return pd.read_pickle(path)
    raise DataFormatError(
        f"unknown transaction format {suffix or '(no suffix)'!r} for {path}: "
        "expected .csv, .csv.gz, .parquet, .pkl or a directory of them"
    )


def _cast(series: pd.Series, dtype: str) -> pd.Series:
    """Cast one column to its schema dtype, naming the column and bad values on failure."""
    if dtype.startswith("datetime64"):
        parsed = pd.to_datetime(naive_utc_times(series), errors="coerce")
        bad = parsed.isna() & series.notna() | ~plain_times(series)
    else:
        parsed = pd.to_numeric(series, errors="coerce")
        bad = parsed.isna() & series.notna()
        # Text cells are read as the contract reads CSV; then no truncation (5.9 is not an id)
        # and no booleans.
        name = str(series.name)
        values = series.map(lambda v: from_text(name, v) if isinstance(v, str) else v)
        if dtype.startswith("int"):
            bad |= ~exact_integers(values)
        bad |= ~plain_numbers(values)
    if bad.any():
        examples = ", ".join(repr(v) for v in series[bad].head(3))
        raise DataFormatError(
            f"column {series.name!r}: {int(bad.sum())} value(s) are not {dtype}, e.g. {examples}"
        )
    if parsed.isna().any() and not dtype.startswith(("datetime64", "float")):
        raise DataFormatError(
            f"column {series.name!r}: {int(parsed.isna().sum())} missing value(s)"
        )
    return parsed.astype(np.dtype(dtype))


def to_schema(frame: pd.DataFrame) -> pd.DataFrame:
    """Map column names (:func:`~vigil.data.schema.column_name`: the handbook's too) and dtypes
    onto Vigil's schema (extras kept)."""
    frame = frame.drop(columns=[c for c in HANDBOOK_DERIVED_COLUMNS if c in frame.columns])
    frame = frame.rename(columns=lambda c: schema.column_name(c) if isinstance(c, str) else c)
    _check_columns(frame.columns)
    missing = [c for c in schema.TRANSACTION_COLUMNS if c not in frame.columns]
    if missing:
        raise DataFormatError(
            f"missing required column(s) {missing}; found {list(frame.columns)} "
            f"(expected {list(schema.TRANSACTION_COLUMNS)} in any case, e.g. the handbook's)"
        )
    known = [c for c in schema.DTYPES if c in frame.columns]
    extras = [c for c in frame.columns if c not in schema.DTYPES]
    out = frame[known + extras].copy()
    for column in known:
        if str(out[column].dtype) != schema.DTYPES[column]:
            out[column] = _cast(out[column], schema.DTYPES[column])
    return out.reset_index(drop=True)


def read_transactions(path: Path) -> pd.DataFrame:
    """Read a CSV, Parquet file, Parquet dataset directory or handbook pickle directory."""
    frame = to_schema(_read_raw(Path(path)))
    logger.info("read %d transactions from %s", len(frame), path)
    return frame


def partition_dir(out_dir: Path, day: pd.Timestamp) -> Path:
    """The directory of one day's partition: ``out_dir/tx_date=YYYY-MM-DD``."""
    return out_dir / f"{schema.TX_DATE}={day.strftime(PARTITION_FORMAT)}"


def write_partitioned(
    df: pd.DataFrame,
    out_dir: Path,
    part: str = "part-0",
    validate: bool = True,
    metadata: Mapping[bytes, bytes] | None = None,
) -> list[Path]:
    """Write ``df`` as ``out_dir/tx_date=YYYY-MM-DD/{part}.parquet`` (contract checked first);
    ``metadata`` joins each file's key-value metadata (e.g. :mod:`vigil.data.origin`'s world)."""
    frame = validate_transactions(df) if validate else df
    days = frame[schema.TX_DATETIME].dt.normalize()
    written = []
    for day, rows in frame.groupby(days, sort=True):
        target = partition_dir(Path(out_dir), pd.Timestamp(day)) / f"{part}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(rows, preserve_index=False)
        if metadata:
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
        pq.write_table(table, target)
        written.append(target)
    logger.debug("wrote %d rows into %d partition(s) under %s", len(frame), len(written), out_dir)
    return written
