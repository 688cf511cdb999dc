"""Training rows streamed from the feature Parquet, one row group at a time (issue 15 item 3).

A run on tens of millions of rows cannot hold its feature frame (50M rows x 24 float64
columns is 9.6 GB); :class:`ParquetRows` reads the rows of a day range row group by row
group and never holds more than one buffer:

- LightGBM builds its binned dataset from :meth:`ParquetRows.sequences`, one
  ``lightgbm.Sequence`` per row group: bins from a sample of ``bin_construct_sample_cnt``
  rows read by random access, then the rows pushed a row group at a time; a one-slot cache
  keeps only the row group being read. The label (and weight) column is the only array of
  the full length.
- The MLP reads :meth:`ParquetRows.batches`: row groups in a shuffled order, pooled into a
  buffer of ``buffer_rows`` rows, shuffled within the buffer, cut into mini-batches.

Rows come in file order, so a LightGBM fit from the stream equals the fit from the same rows in
memory; the MLP sees another order than the in-memory loop's full permutation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import lightgbm
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vigil.data.schema import TX_DATETIME, TX_FRAUD
from vigil.training.splits import Periods


def _microseconds(moment: date) -> np.datetime64:
    """A date or datetime (footer statistics are datetimes) as a microsecond timestamp."""
    return np.datetime64(moment, "us")


@dataclass
class _Group:
    """One row group of the file and which of its rows fall in the day range (None: all)."""

    index: int
    rows: int
    mask: np.ndarray | None


@dataclass
class ParquetRows:
    """The labelled rows of ``[start, end)`` of a feature Parquet, read one row group at a time."""

    path: Path
    features: tuple[str, ...]
    start: date
    end: date
    buffer_rows: int = 1 << 20
    groups: list[_Group] = field(init=False)
    largest_read: int = field(init=False, default=0)  # most rows held at once (tests check it)
    _cache: tuple[int, np.ndarray] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._file = pq.ParquetFile(self.path)
        names = self._file.schema_arrow.names
        missing = [n for n in (*self.features, TX_FRAUD, TX_DATETIME) if n not in names]
        if missing:
            raise ValueError(f"{self.path} lacks columns {missing}")
        self.groups = self._select_groups(names.index(TX_DATETIME))
        if not self.groups:
            raise ValueError(f"{self.path} has no row in {self.start}..{self.end}")

    def _select_groups(self, time_column: int) -> list[_Group]:
        """Row groups overlapping the range (footer statistics), with a row mask where partial."""
        low, high = _microseconds(self.start), _microseconds(self.end)
        meta = self._file.metadata
        groups = []
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(time_column).statistics
            if stats is not None and stats.has_min_max:
                first, last = _microseconds(stats.min), _microseconds(stats.max)
                if last < low or first >= high:
                    continue
                if first >= low and last < high:
                    groups.append(_Group(g, meta.row_group(g).num_rows, None))
                    continue
            times = self._file.read_row_group(g, columns=[TX_DATETIME]).column(0)
            times = times.cast(pa.timestamp("us")).to_numpy().astype("datetime64[us]")
            mask = (times >= low) & (times < high)
            if mask.any():
                groups.append(_Group(g, int(mask.sum()), mask))
        return groups

    def __len__(self) -> int:
        return sum(g.rows for g in self.groups)

    def _read(self, group: _Group, columns: Sequence[str]) -> pa.Table:
        table = self._file.read_row_group(group.index, columns=list(columns), use_threads=False)
        return table if group.mask is None else table.filter(pa.array(group.mask))

    def features_of(self, group: _Group) -> np.ndarray:
        """One row group's features as float32 [rows, F] (the one group kept in the cache)."""
        if self._cache is not None and self._cache[0] == group.index:
            return self._cache[1]
        self._cache = None  # drop the previous group before reading the next
        table = self._read(group, self.features)
        matrix = np.empty((group.rows, len(self.features)), dtype=np.float32)
        for j, column in enumerate(table.columns):
            matrix[:, j] = column.to_numpy()
        self.largest_read = max(self.largest_read, group.rows)
        self._cache = (group.index, matrix)
        return matrix

    def labels(self) -> np.ndarray:
        """Every row's label (int8 [N]), in file order: the one full-length array."""
        parts = [
            self._read(g, [TX_FRAUD]).column(0).to_numpy().astype(np.int8) for g in self.groups
        ]
        return np.concatenate(parts)

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of each feature (float64 sums over one pass)."""
        total = np.zeros(len(self.features))
        squares = np.zeros(len(self.features))
        for g in self.groups:
            block = self.features_of(g).astype(np.float64)
            total += block.sum(axis=0)
            squares += np.square(block).sum(axis=0)
        n = len(self)
        mean = total / n
        return mean, np.sqrt(np.maximum(squares / n - np.square(mean), 0.0))

    def table(self, frauds_only: bool = False) -> pa.Table:
        """Every column of the rows (only the frauds if asked), features cast to float32."""
        float32 = {name: pa.float32() for name in self.features}
        parts = []
        for group in self.groups:
            part = self._read(group, self._file.schema_arrow.names)
            if frauds_only:
                part = part.filter(pc.equal(part.column(TX_FRAUD), 1))
            fields = [pa.field(f.name, float32.get(f.name, f.type)) for f in part.schema]
            parts.append(part.cast(pa.schema(fields)))
        return pa.concat_tables(parts)

    def sequences(self) -> list[lightgbm.Sequence]:
        """One ``lightgbm.Sequence`` per row group, in file order."""
        return [_GroupSequence(self, g) for g in self.groups]

    def batches(
        self, batch_size: int, rng: np.random.Generator
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """One epoch of shuffled (features float32, labels int8) mini-batches.

        Row groups come in a random order and are pooled until the buffer holds
        ``buffer_rows`` rows; the buffer is shuffled and cut into batches.
        """
        pending: list[tuple[np.ndarray, np.ndarray]] = []
        held = 0
        for position in rng.permutation(len(self.groups)):
            group = self.groups[position]
            labels = self._read(group, [TX_FRAUD]).column(0).to_numpy().astype(np.int8)
            pending.append((self.features_of(group), labels))
            self._cache = None  # the buffer holds it now
            held += group.rows
            if held >= self.buffer_rows:
                yield from self._drain(pending, batch_size, rng)
                pending, held = [], 0
        if pending:
            yield from self._drain(pending, batch_size, rng)

    def _drain(
        self,
        pending: list[tuple[np.ndarray, np.ndarray]],
        batch_size: int,
        rng: np.random.Generator,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        features = np.concatenate([p[0] for p in pending])
        labels = np.concatenate([p[1] for p in pending])
        pending.clear()
        self.largest_read = max(self.largest_read, len(labels))
        order = rng.permutation(len(labels))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            yield features[rows], labels[rows]


class _GroupSequence(lightgbm.Sequence):
    """LightGBM's view of one row group: random access for the bin sample, slices to push."""

    def __init__(self, rows: ParquetRows, group: _Group) -> None:
        self._rows = rows
        self._group = group
        self.batch_size = group.rows

    def __len__(self) -> int:
        return self._group.rows

    def __getitem__(self, index: int | slice | list[int]) -> np.ndarray:
        rows = self._rows.features_of(self._group)[index]
        # A sampled row is kept until the bins are built: a copy (LightGBM wants float64), not
        # a view that would pin its whole row group in memory.
        return rows.astype(np.float64) if isinstance(index, int | np.integer) else rows


def read_protocol_frame(path: Path, features: Sequence[str], periods: Periods) -> pd.DataFrame:
    """What :func:`~vigil.training.splits.handbook_split` needs besides the fitting rows.

    Every row of the validation and test days, and the frauds of the other days from
    ``train_start`` to the test, which decide the cards known compromised: the split of this
    frame has the same validation and test sets as the split of the whole table. Read one
    row group at a time, features as float32 (what the models take).
    """
    names = tuple(features)
    days = [
        (periods.validation_start, periods.delay_start, False),
        (periods.test_start, periods.test_end, False),
        (periods.train_start, periods.validation_start, True),
        (periods.delay_start, periods.test_start, True),
    ]
    parts = [ParquetRows(path, names, start, end).table(frauds) for start, end, frauds in days]
    frame = pa.concat_tables(parts).to_pandas()
    return frame.sort_values(TX_DATETIME, kind="stable").reset_index(drop=True)
