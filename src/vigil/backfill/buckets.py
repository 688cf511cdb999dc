"""Independent buckets of an offline feature build: entity hash x time slice, with margin.

A bucket is one entity side (customer or terminal), one hash bucket of that entity's ids and
one time slice ``[lo, hi)``. Its task reads the transactions of its entities from ``lo``
minus the features' look-back (:func:`~vigil.features.definitions.feature_lookback_days`:
longest window plus label delay) up to ``hi``, runs the single-node engine's public entry
point (:func:`vigil.features.offline.compute_features_frame`) on them and keeps the rows of
``[lo, hi)``: every window of those rows lies inside what was read, so each value equals the
whole-history build's (the engine's window sums run left to right over the window's rows,
whatever came before). The customer side keeps the customer and row-level features (and the
keys and labels), the terminal side the terminal features; a slice's two sides joined on
``transaction_id`` are the feature table's rows of that slice. Tasks share nothing but the
source and a work folder that every worker can reach (a shared volume or object store).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from vigil.config import FeaturesConfig
from vigil.data import schema
from vigil.features import definitions as fd
from vigil.features.definitions import feature_lookback_days, feature_names
from vigil.features.offline import compute_features_frame

SIDES = {"customer": schema.CUSTOMER_ID, "terminal": schema.TERMINAL_ID}
ORDER = (schema.TX_DATETIME, schema.TRANSACTION_ID)  # the feature table's tie order


@dataclass(frozen=True)
class TimeSlice:
    """Half-open ``[lo, hi)`` of event time (naive UTC, whole days)."""

    index: int
    lo: datetime
    hi: datetime


@dataclass(frozen=True)
class Bucket:
    """One independent task of a distributed feature build."""

    side: str  # "customer" | "terminal"
    hash_bucket: int
    hash_buckets: int
    time_slice: TimeSlice

    @property
    def name(self) -> str:
        """File stem of the bucket's part."""
        return f"{self.side}-h{self.hash_bucket}-s{self.time_slice.index}"


def source_relation(source: Path) -> str:
    """DuckDB table expression over one Parquet file or a folder of them (day partitions)."""
    if source.is_dir():
        return f"read_parquet('{source}/**/*.parquet', hive_partitioning = true)"
    if source.exists():
        return f"read_parquet('{source}')"
    raise FileNotFoundError(f"no Parquet data at {source}")


def time_slices(source: Path, count: int) -> list[TimeSlice]:
    """``count`` slices of whole UTC days covering the source's event times (fewer if the
    source spans fewer days)."""
    if count < 1:
        raise ValueError("time slices must be >= 1")
    with duckdb.connect() as con:
        row = con.execute(
            f"SELECT min({schema.TX_DATETIME}), max({schema.TX_DATETIME}), count(*) "
            f"FROM {source_relation(source)}"
        ).fetchone()
    if row is None or not row[2]:
        raise ValueError(f"{source} holds no transactions")
    first = datetime.combine(row[0].date(), datetime.min.time())
    days = (row[1].date() - first.date()).days + 1
    per = -(-days // min(count, days))
    edges = [first + timedelta(days=d) for d in range(0, days, per)]
    edges.append(first + timedelta(days=days))
    return [TimeSlice(i, lo, hi) for i, (lo, hi) in enumerate(itertools.pairwise(edges))]


def plan(source: Path, hash_buckets: int, slices: int) -> list[Bucket]:
    """Every bucket of both sides: ``2 * hash_buckets * slices`` tasks."""
    if hash_buckets < 1:
        raise ValueError("hash buckets must be >= 1")
    return [
        Bucket(side, h, hash_buckets, time_slice)
        for time_slice in time_slices(source, slices)
        for side in SIDES
        for h in range(hash_buckets)
    ]


def side_columns(config: FeaturesConfig, side: str) -> list[str]:
    """The feature columns a side's bucket contributes (row-level ones on the customer side).

    Raises if a configured feature belongs to neither entity, so that a new feature group
    that mixes customers and terminals cannot be split silently wrong.
    """
    rows = {fd.TX_AMOUNT, fd.TX_DURING_WEEKEND, fd.TX_DURING_NIGHT}
    owned = {
        "customer": [n for n in feature_names(config) if n in rows or n.startswith("customer_")],
        "terminal": [n for n in feature_names(config) if n.startswith("terminal_")],
    }
    stray = set(feature_names(config)) - set(owned["customer"]) - set(owned["terminal"])
    if stray:
        raise ValueError(f"features of no single entity cannot be bucketed: {sorted(stray)}")
    return owned[side]


def read_bucket_input(source: Path, bucket: Bucket, margin_days: int) -> pa.Table:
    """The transactions of the bucket's entities in ``[lo - margin, hi)``."""
    entity = SIDES[bucket.side]
    lo = bucket.time_slice.lo - timedelta(days=margin_days)
    query = (
        f"SELECT * FROM {source_relation(source)} "
        f"WHERE hash(CAST({entity} AS BIGINT)) % {bucket.hash_buckets} = {bucket.hash_bucket} "
        f"AND {schema.TX_DATETIME} >= $lo AND {schema.TX_DATETIME} < $hi"
    )
    with duckdb.connect() as con:
        return con.sql(query, params={"lo": lo, "hi": bucket.time_slice.hi}).to_arrow_table()


def run_bucket(config: FeaturesConfig, source: Path, bucket: Bucket, work: Path) -> Path:
    """Compute one bucket and write its part to ``work``; the part's path."""
    transactions = read_bucket_input(source, bucket, feature_lookback_days(config))
    path = work / f"{bucket.name}.parquet"
    features = compute_features_frame(config, transactions.to_pandas())
    in_slice = (features[schema.TX_DATETIME] >= bucket.time_slice.lo) & (
        features[schema.TX_DATETIME] < bucket.time_slice.hi
    )
    own = side_columns(config, bucket.side)
    if bucket.side == "customer":
        keep = [c for c in features.columns if c in own or c not in feature_names(config)]
    else:
        keep = [schema.TRANSACTION_ID, *own]
    part = pa.Table.from_pandas(features.loc[in_slice, keep], preserve_index=False)
    pq.write_table(part, path)
    return path


def assemble_slice(config: FeaturesConfig, work: Path, time_slice: TimeSlice) -> Path:
    """Join a slice's customer and terminal parts into its rows of the feature table, in the
    single-node table's column and row order."""
    path = work / f"slice-{time_slice.index}.parquet"
    index = time_slice.index
    parts = {side: f"read_parquet('{work}/{side}-h*-s{index}.parquet')" for side in SIDES}
    features = feature_names(config)
    with duckdb.connect() as con:
        con.execute("SET preserve_insertion_order = true")
        described = con.execute(f"DESCRIBE SELECT * FROM {parts['customer']}").fetchall()
        keys = [str(row[0]) for row in described if str(row[0]) not in features]
        select = ", ".join(f'"{name}"' for name in [*keys, *features])
        con.execute(
            f"COPY (SELECT {select} FROM {parts['customer']} AS c JOIN {parts['terminal']} AS t "
            f"USING ({schema.TRANSACTION_ID}) ORDER BY {', '.join(ORDER)}) "
            f"TO '{path}' (FORMAT parquet)"
        )
    return path
