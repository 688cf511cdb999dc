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

A LightGBM fit costs about 125 bytes per fitting row whatever ``max_bin`` (label, weight,
bins, gradients, hessians, scores, row partition), so above ``model.lightgbm.max_fit_rows``
the genuine rows are sampled (:meth:`ParquetRows.sample_genuines`): every fraud kept, each
genuine row kept with probability r and weighted 1/r. The file is open while the instance
is: use it as a context manager, or :meth:`ParquetRows.close` it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import lightgbm
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vigil.data.schema import TX_DATETIME, TX_FRAUD

logger = logging.getLogger(__name__)


def _microseconds(moment: date) -> np.datetime64:
    """A date or datetime (footer statistics are datetimes) as a microsecond timestamp."""
    return np.datetime64(moment, "us")


@dataclass
class _Group:
    """One row group of the file and which of its rows are read (None: all).

    The mask (day range, genuine sample) is kept bit-packed: one bit per row of the group.
    """

    index: int
    rows: int
    packed: np.ndarray | None
    length: int = 0

    @classmethod
    def of(cls, index: int, mask: np.ndarray | None, length: int) -> _Group:
        """The group with these rows kept (``mask`` None: all ``length`` rows)."""
        if mask is None:
            return cls(index, length, None, length)
        return cls(index, int(mask.sum()), np.packbits(mask), length)

    @property
    def mask(self) -> np.ndarray | None:
        """Which of the group's rows are kept (bool [length]), None for all."""
        if self.packed is None:
            return None
        return np.unpackbits(self.packed, count=self.length).astype(bool)


def genuine_rate(genuines: int, frauds: int, max_rows: int) -> float:
    """The rate r at which genuine rows are kept so that frauds + r * genuines <= max_rows.

    1.0 when every row fits; raises when the frauds alone exceed ``max_rows``.
    """
    if frauds + genuines <= max_rows:
        return 1.0
    if frauds >= max_rows:
        raise ValueError(f"{frauds} frauds alone exceed the {max_rows} fitting rows allowed")
    return (max_rows - frauds) / genuines


def _genuine_draw(seed: int, group: int, rows: int) -> np.ndarray:
    """One uniform draw per row of a row group: the same for a seed and group, in any run."""
    return np.random.default_rng([seed, group]).random(rows)


@dataclass
class ParquetRows:
    """The labelled rows of ``[start, end)`` of a feature Parquet, read one row group at a time."""

    path: Path
    features: tuple[str, ...]
    start: date
    end: date
    buffer_rows: int = 1 << 20
    # Genuine (label 0) rows are kept with this probability and weighted 1 / rate.
    rate: float = 1.0
    seed: int = 0
    groups: list[_Group] = field(init=False)
    largest_read: int = field(init=False, default=0)  # most rows held at once (tests check it)
    _cache: tuple[int, np.ndarray] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if not 0 < self.rate <= 1:
            raise ValueError(f"the genuine sampling rate must lie in (0, 1], got {self.rate}")
        self._file = pq.ParquetFile(self.path)
        try:
            names = self._file.schema_arrow.names
            missing = [n for n in (*self.features, TX_FRAUD, TX_DATETIME) if n not in names]
            if missing:
                raise ValueError(f"{self.path} lacks columns {missing}")
            self.groups = self._select_groups(names.index(TX_DATETIME))
            if self.rate < 1:
                self.groups = [s for s in map(self._sampled, self.groups) if s.rows]
            if not self.groups:
                raise ValueError(f"{self.path} has no row in {self.start}..{self.end}")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the Parquet file (reading afterwards fails)."""
        self._cache = None
        self._file.close()

    def __enter__(self) -> ParquetRows:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def sample_genuines(self, max_rows: int, seed: int) -> ParquetRows:
        """These rows with the genuine ones sampled so that at most about ``max_rows`` remain.

        Every fraud is kept; genuine rows at the rate :func:`genuine_rate` gives (1.0: all
        rows, the same rows as this instance), drawn from ``seed`` and the row group's index,
        so the sample is the same in every run. A new instance, with its own open file.
        """
        labels = self.labels()
        frauds = int(labels.sum())
        rate = genuine_rate(len(labels) - frauds, frauds, max_rows)
        del labels
        sampled = ParquetRows(
            self.path, self.features, self.start, self.end, self.buffer_rows, rate, seed
        )
        logger.info(
            "fitting rows: %d of %d (every fraud: %d; genuine rate %.4f, weight %.2f)",
            len(sampled),
            len(self),
            frauds,
            rate,
            1 / rate,
        )
        return sampled

    def _sampled(self, group: _Group) -> _Group:
        """The group with its genuine rows kept at ``rate`` (every fraud kept)."""
        labels = self._file.read_row_group(group.index, columns=[TX_FRAUD], use_threads=False)
        frauds = labels.column(0).to_numpy() == 1
        keep = frauds | (_genuine_draw(self.seed, group.index, group.length) < self.rate)
        mask = keep if group.mask is None else keep & group.mask
        return _Group.of(group.index, mask, group.length)

    def _select_groups(self, time_column: int) -> list[_Group]:
        """Row groups overlapping the range (footer statistics), with a row mask where partial."""
        low, high = _microseconds(self.start), _microseconds(self.end)
        meta = self._file.metadata
        groups = []
        for g in range(meta.num_row_groups):
            length = meta.row_group(g).num_rows
            stats = meta.row_group(g).column(time_column).statistics
            if stats is not None and stats.has_min_max:
                first, last = _microseconds(stats.min), _microseconds(stats.max)
                if last < low or first >= high:
                    continue
                if first >= low and last < high:
                    groups.append(_Group.of(g, None, length))
                    continue
            times = self._file.read_row_group(g, columns=[TX_DATETIME]).column(0)
            times = times.cast(pa.timestamp("us")).to_numpy().astype("datetime64[us]")
            mask = (times >= low) & (times < high)
            if mask.any():
                groups.append(_Group.of(g, mask, length))
        return groups

    def __len__(self) -> int:
        return sum(g.rows for g in self.groups)

    def _read(self, group: _Group, columns: Sequence[str]) -> pa.Table:
        table = self._file.read_row_group(group.index, columns=list(columns), use_threads=False)
        mask = group.mask
        return table if mask is None else table.filter(pa.array(mask))

    def read(self, columns: Sequence[str]) -> Iterator[pa.Table]:
        """The rows of each row group in turn, these columns only."""
        for group in self.groups:
            yield self._read(group, columns)

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

    def weights(self) -> np.ndarray | None:
        """Each row's sampling weight (float32 [N]: 1 for a fraud, 1 / rate for a genuine row),
        None when every row is kept."""
        if self.rate == 1:
            return None
        labels = self.labels()
        return np.where(labels == 1, np.float32(1), np.float32(1 / self.rate))

    def moments(
        self, transform: Callable[[np.ndarray], np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of each feature (float64 sums over one pass), of
        ``transform(features)`` when given (a model's input transform before its scaler)."""
        total = np.zeros(len(self.features))
        squares = np.zeros(len(self.features))
        for g in self.groups:
            block = self.features_of(g)
            block = (block if transform is None else transform(block)).astype(np.float64)
            total += block.sum(axis=0)
            squares += np.square(block).sum(axis=0)
        n = len(self)
        mean = total / n
        return mean, np.sqrt(np.maximum(squares / n - np.square(mean), 0.0))

    def table(self) -> pa.Table:
        """Every column of the rows, features cast to float32."""
        float32 = {name: pa.float32() for name in self.features}
        parts = []
        for group in self.groups:
            part = self._read(group, self._file.schema_arrow.names)
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
