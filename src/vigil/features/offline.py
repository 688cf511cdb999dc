"""Offline feature table: the compiled kernels over an in-memory frame or a Parquet stream.

:func:`build_feature_table` streams any number of transactions: a first pass over the entity
and time columns sizes each customer's and terminal's ring (:func:`kernels.ring_capacities`),
the second reads chunk after chunk in time order, runs the customer and terminal scans side
by side (numba, no GIL) and appends the rows to one Parquet file. Memory follows the rows of
the longest window plus the label delay, never the whole history (ADR 0022).
"""

from __future__ import annotations

import itertools
import logging
import tempfile
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from vigil.config import FeaturesConfig
from vigil.data import schema
from vigil.features import chunks as ck
from vigil.features import kernels
from vigil.features.definitions import check_config, stream_feature_names
from vigil.features.kernels import KernelSpec, Rings

logger = logging.getLogger(__name__)

MAX_CHUNK_ROWS = 8_000_000  # larger time-overlapping groups are re-partitioned by day first
SLICE_ROWS = 131_072  # rows scanned and written at a time (a Parquet row group): bounds memory
DIRECT_SLACK = 1_000_000  # ids below 2 * rows + this index the rings directly
# Dictionary pages cost more CPU than they save on float features; snappy stays the default.
PARQUET_OPTIONS: dict[str, object] = {"compression": "snappy", "use_dictionary": False}
KEYS = (schema.TRANSACTION_ID, schema.TX_DATETIME, schema.CUSTOMER_ID, schema.TERMINAL_ID)


@dataclass(frozen=True)
class FeatureBuildSummary:
    """What :func:`build_feature_table` wrote."""

    output_path: Path
    rows: int
    columns: list[str]
    seconds: float
    chunks: int
    state_mb: float  # the rings' memory


class EntityIndex:
    """Dense indices for entity ids: the id itself when ids are small, else its rank."""

    def __init__(self, ids: np.ndarray | None = None, largest: int | None = None) -> None:
        self.ids = ids  # sorted unique ids, or None when ids are small (``largest`` given)
        self.size = largest + 1 if largest is not None else len(ids) if ids is not None else 0

    @classmethod
    def of(cls, ids: np.ndarray) -> EntityIndex:
        """Index for the sorted unique ``ids``: direct when they are small and dense enough."""
        if len(ids) and ids[0] >= 0 and ids[-1] < 2 * len(ids) + DIRECT_SLACK:
            return cls(largest=int(ids[-1]))
        return cls(ids)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """Dense indices of ``values`` (all among the ids)."""
        return values if self.ids is None else np.searchsorted(self.ids, values)


def _direct(ranges: list[tuple[int, int] | None], rows: int) -> EntityIndex | None:
    """A direct index when the files' statistics show small non-negative ids."""
    if not ranges or any(r is None for r in ranges):
        return None
    low = min(r[0] for r in ranges if r is not None)
    high = max(r[1] for r in ranges if r is not None)
    return EntityIndex(largest=high) if low >= 0 and high < 2 * rows + DIRECT_SLACK else None


class _Capacities:
    """Streaming :func:`kernels.ring_capacities`: rows of the last ``span + 1`` days per entity."""

    def __init__(self, size: int, span_days: int) -> None:
        self.rolling = np.zeros(size, dtype=np.int64)
        self.best = np.zeros(size, dtype=np.int64)
        self.window: deque[tuple[int, np.ndarray]] = deque()
        self.span = span_days

    def add(self, days: np.ndarray, entities: np.ndarray) -> None:
        """Count one chunk's rows (``days`` sorted, in time order after earlier chunks)."""
        edges = np.concatenate(([0], np.flatnonzero(np.diff(days)) + 1, [len(days)]))
        for lo, hi in itertools.pairwise(edges):
            day = int(days[lo])
            while self.window and self.window[0][0] < day - self.span:
                self.rolling -= np.bincount(self.window.popleft()[1], minlength=len(self.rolling))
            group = entities[lo:hi].astype(np.int32)
            self.rolling += np.bincount(group, minlength=len(self.rolling))
            np.maximum(self.best, self.rolling, out=self.best)
            self.window.append((day, group))


def _plan(
    config: FeaturesConfig, source: Path, scratch: Path
) -> tuple[ck.Columns, list[list[ck.SourceFile]]]:
    """Columns and time-disjoint chunks of ``source`` (re-partitioned by day when needed)."""
    files = ck.source_files(source)
    columns = ck.Columns.of(pq.ParquetFile(files[0]).schema_arrow.names, str(source))
    described = [ck.describe(f, columns) for f in files]
    if not any(f.rows for f in described):
        raise ValueError(f"{source} holds no transactions")
    chunks = ck.plan_chunks(described)
    if chunks is None or any(sum(f.rows for f in c) > MAX_CHUNK_ROWS for c in chunks):
        logger.info("re-partitioning %s by day (time ranges overlap or are unknown)", source)
        settings = f"SET memory_limit = '{config.duckdb_memory_limit}'; SET TimeZone = 'UTC'"
        day_dir = ck.repartition_by_day(files, columns, scratch / "by-day", settings)
        files = ck.source_files(day_dir)
        columns = ck.Columns.of(pq.ParquetFile(files[0]).schema_arrow.names, str(day_dir))
        chunks = ck.plan_chunks([ck.describe(f, columns) for f in files])
        assert chunks is not None
    return columns, chunks


def _entity_indices(
    columns: ck.Columns, chunks: list[list[ck.SourceFile]]
) -> tuple[EntityIndex, EntityIndex]:
    """Customer and terminal indices: from the statistics, else from a pass over the ids."""
    files = [f for c in chunks for f in c]
    rows = sum(f.rows for f in files)
    by_customer = _direct([f.customers for f in files], rows)
    by_terminal = _direct([f.terminals for f in files], rows)
    if by_customer is not None and by_terminal is not None:
        return by_customer, by_terminal
    customers: list[np.ndarray] = []
    terminals: list[np.ndarray] = []
    for table in ck.iter_chunks(chunks, columns, [schema.CUSTOMER_ID, schema.TERMINAL_ID]):
        customers.append(np.unique(table.column(schema.CUSTOMER_ID).to_numpy()))
        terminals.append(np.unique(table.column(schema.TERMINAL_ID).to_numpy()))
    return (
        by_customer or EntityIndex.of(np.unique(np.concatenate(customers))),
        by_terminal or EntityIndex.of(np.unique(np.concatenate(terminals))),
    )


def _size_rings(
    spec: KernelSpec, columns: ck.Columns, chunks: list[list[ck.SourceFile]]
) -> tuple[EntityIndex, EntityIndex, Rings, Rings]:
    """First pass: entity indices, then each entity's ring capacity from daily counts."""
    by_customer, by_terminal = _entity_indices(columns, chunks)
    c_caps = _Capacities(by_customer.size, spec.span_days)
    t_caps = _Capacities(by_terminal.size, spec.span_days)
    wanted = [schema.TX_DATETIME, schema.CUSTOMER_ID, schema.TERMINAL_ID]
    for table in ck.iter_chunks(chunks, columns, wanted):
        ts = ck.ts_us(table)
        order = np.argsort(ts, kind="stable") if np.any(np.diff(ts) < 0) else slice(None)
        days = np.floor_divide(ts[order], kernels.US_PER_DAY)
        c_caps.add(days, by_customer(table.column(schema.CUSTOMER_ID).to_numpy()[order]))
        t_caps.add(days, by_terminal(table.column(schema.TERMINAL_ID).to_numpy()[order]))
    nw = len(spec.windows_us)
    return (
        by_customer,
        by_terminal,
        Rings.allocate(c_caps.best, nw, amounts=True),
        Rings.allocate(t_caps.best, nw, amounts=False),
    )


@dataclass
class _Scan:
    """The streaming state of one build: spec, entity indices and rings."""

    spec: KernelSpec
    by_customer: EntityIndex
    by_terminal: EntityIndex
    customer_rings: Rings
    terminal_rings: Rings

    def features(self, table: pa.Table, pool: ThreadPoolExecutor | None) -> list[np.ndarray]:
        """Every feature column of a sorted chunk, in :func:`stream_feature_names` order."""
        spec = self.spec
        ts = ck.ts_us(table)
        amount = table.column(schema.TX_AMOUNT).to_numpy()
        fraud = _fraud(table)
        customer = self.by_customer(table.column(schema.CUSTOMER_ID).to_numpy())
        terminal = self.by_terminal(table.column(schema.TERMINAL_ID).to_numpy())
        args = (spec, self.customer_rings, ts, customer, amount, fraud)
        if pool is None:
            cust = kernels.customer_features(*args)
            term = kernels.terminal_features(spec, self.terminal_rings, ts, terminal, fraud)
        else:
            pending = pool.submit(kernels.customer_features, *args)
            term = kernels.terminal_features(spec, self.terminal_rings, ts, terminal, fraud)
            cust = pending.result()
        weekend, night = kernels.row_features(spec, ts)
        return _arrange(spec, amount, weekend, night, cust, term)


def _fraud(table: pa.Table) -> np.ndarray:
    """Labels as int8 (missing labels count as not fraud, as in a window sum that skips NULL)."""
    if schema.TX_FRAUD not in table.column_names:
        return np.zeros(table.num_rows, dtype=np.int8)
    return table.column(schema.TX_FRAUD).fill_null(0).cast(pa.int8()).to_numpy()


def _arrange(
    spec: KernelSpec,
    amount: np.ndarray,
    weekend: np.ndarray,
    night: np.ndarray,
    cust: np.ndarray,
    term: np.ndarray,
) -> list[np.ndarray]:
    """Columns in :func:`stream_feature_names` order: row, customer and terminal windows, groups."""
    nw = 2 * len(spec.windows_us)
    return [amount, weekend, night, *cust[:nw], *term[:nw], *cust[nw:], *term[nw:]]


def _output(table: pa.Table, names: list[str], values: list[np.ndarray]) -> pa.Table:
    """Keys, labels and features (float64) of one chunk, in the table's column order."""
    keep = [*KEYS, *(c for c in ck.PASSTHROUGH if c in table.column_names)]
    arrays = [table.column(c) for c in keep] + [pa.array(v) for v in values]
    return pa.Table.from_arrays(arrays, names=[*keep, *names])


def _stream(
    scan: _Scan,
    names: list[str],
    columns: ck.Columns,
    chunks: list[list[ck.SourceFile]],
    output_path: Path,
    progress: bool,
) -> int:
    """Second pass on three threads: read chunk k + 1 while slices of chunk k are scanned,
    each slice written while the next is scanned."""
    rows = 0
    writer: pq.ParquetWriter | None = None
    written: Future[None] | None = None
    try:
        with (
            ThreadPoolExecutor(3) as pool,
            tqdm(total=sum(f.rows for c in chunks for f in c), disable=not progress) as bar,
        ):
            reading = pool.submit(ck.read_chunk, chunks[0], columns)
            for k in range(len(chunks)):
                chunk = reading.result()
                if k + 1 < len(chunks):
                    reading = pool.submit(ck.read_chunk, chunks[k + 1], columns)
                for start in range(0, chunk.num_rows, SLICE_ROWS):
                    table = chunk.slice(start, SLICE_ROWS)
                    out = _output(table, names, scan.features(table, pool))
                    if writer is None:
                        writer = pq.ParquetWriter(output_path, out.schema, **PARQUET_OPTIONS)
                    if written is not None:
                        written.result()
                    written = pool.submit(writer.write_table, out)
                    rows += out.num_rows
                    bar.update(out.num_rows)
            if written is not None:
                written.result()
    finally:
        if writer is not None:
            writer.close()
    return rows


def build_feature_table(
    config: FeaturesConfig,
    source: Path,
    output_path: Path,
    progress: bool = True,
) -> FeatureBuildSummary:
    """Compute features for every transaction under ``source`` into one Parquet file.

    Rows come out in tie order ``(tx_datetime, transaction_id)``: ids, datetime, customer,
    terminal, the label columns present, then :func:`stream_feature_names`.
    """
    check_config(config)
    started = time.perf_counter()
    spec = KernelSpec.from_config(config)
    names = stream_feature_names(config)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with tempfile.TemporaryDirectory(prefix="vigil-features-", dir=output_path.parent) as tmp:
        columns, chunks = _plan(config, source, Path(tmp))
        total = sum(f.rows for c in chunks for f in c)
        if not columns.has_fraud:
            logger.warning(
                "%s has no %s: terminal and customer risk are 0", source, schema.TX_FRAUD
            )
        scan = _Scan(spec, *_size_rings(spec, columns, chunks))
        state_mb = (scan.customer_rings.nbytes + scan.terminal_rings.nbytes) / 1e6
        logger.info(
            "features for %d rows in %d chunks, rings %.0f MB", total, len(chunks), state_mb
        )
        rows = _stream(scan, names, columns, chunks, output_path, progress)
    if rows != total:
        raise RuntimeError(f"feature table has {rows} rows for {total} transactions")
    seconds = time.perf_counter() - started
    logger.info("wrote %d feature rows to %s in %.1f s", rows, output_path, seconds)
    return FeatureBuildSummary(output_path, rows, names, seconds, len(chunks), state_mb)


def compute_features_frame(config: FeaturesConfig, transactions: pd.DataFrame) -> pd.DataFrame:
    """Features for an in-memory frame of transactions (ids, passthrough labels, features)."""
    check_config(config)
    columns = ck.Columns.of([str(c) for c in transactions.columns], "transactions frame")
    if not columns.has_fraud:
        logger.warning(
            "transactions frame has no %s: terminal and customer risk are 0", schema.TX_FRAUD
        )
    frame = transactions[list(columns.names.values())]
    table = ck.typed(pa.Table.from_pandas(frame, preserve_index=False), columns)
    spec = KernelSpec.from_config(config)
    ts = ck.ts_us(table)
    days = np.floor_divide(ts, kernels.US_PER_DAY)
    indices = []
    for column in (schema.CUSTOMER_ID, schema.TERMINAL_ID):
        ids = table.column(column).to_numpy()
        index = EntityIndex.of(np.unique(ids))
        capacities = _Capacities(index.size, spec.span_days)
        capacities.add(days, index(ids))
        indices.append((index, capacities.best))
    nw = len(spec.windows_us)
    scan = _Scan(
        spec,
        indices[0][0],
        indices[1][0],
        Rings.allocate(indices[0][1], nw, amounts=True),
        Rings.allocate(indices[1][1], nw, amounts=False),
    )
    out = _output(table, stream_feature_names(config), scan.features(table, None))
    return out.to_pandas()
