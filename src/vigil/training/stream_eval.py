"""The test set of a streamed run, scored one row group at a time (issue 15 item 3).

The handbook's test set (:func:`~vigil.training.splits.handbook_split`) is every row of the
test days whose card was not yet known compromised that day: known are the cards with a fraud
from ``train_start`` to the day before (cumulative, as the handbook's
``get_train_test_set``), so test day i excludes the fraud cards of
``[train_start, delay_start + i)``. Here the fraud cards come from one pass over three
columns, then the test days are read a row group at a time, filtered, scored and dropped:
what stays is four arrays of the test days' length (labels, scores, days, cards: 21 bytes a
row) and the first ``sample_rows`` rows, which MLflow logs as the testing dataset. The
feature matrix of the test week never exists whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from vigil.data.schema import CUSTOMER_ID, TRANSACTION_ID, TX_DATETIME, TX_FRAUD
from vigil.training.splits import Periods
from vigil.training.stream import ParquetRows

# Rows of the test set kept as a frame (MLflow's dataset digest reads 10,000 rows).
SAMPLE_ROWS = 10_000


@dataclass(frozen=True)
class Scored:
    """One evaluation set: labels, scores and what card precision@k needs."""

    labels: np.ndarray
    scores: np.ndarray
    days: np.ndarray  # days since the epoch (int64)
    cards: np.ndarray


@dataclass(frozen=True)
class ScoredTest:
    """The scored test set and its first rows (features, ids, label) as a frame."""

    scored: Scored
    sample: pd.DataFrame


def epoch_days(times: np.ndarray) -> np.ndarray:
    """Timestamps as whole days since 1970-01-01 (int64)."""
    return times.astype("datetime64[D]").astype(np.int64)


def _known_by_day(path: Path, periods: Periods) -> dict[int, np.ndarray]:
    """For each test day (epoch day), the cards known compromised that day (sorted)."""
    n_days = (periods.test_end - periods.test_start).days
    last = periods.delay_start + timedelta(days=n_days - 1)
    columns = [CUSTOMER_ID, TX_DATETIME, TX_FRAUD]
    pairs = []  # (card, first fraud day) of each row group's fraud cards
    with ParquetRows(path, (), periods.train_start, max(last, periods.delay_start)) as rows:
        for table in rows.read(columns):
            frauds = table.filter(pc.equal(table.column(TX_FRAUD), 1))
            cards = frauds.column(CUSTOMER_ID).to_numpy()
            days = epoch_days(_times(frauds))
            order = np.lexsort((days, cards))
            cards, days = cards[order], days[order]
            first = np.r_[True, cards[1:] != cards[:-1]][: len(cards)]
            pairs.append(np.stack([cards[first], days[first]]))
    cards, days = np.concatenate(pairs, axis=1)
    delay_start, test_start = (_epoch_day(d) for d in (periods.delay_start, periods.test_start))
    return {test_start + i: np.unique(cards[days < delay_start + i]) for i in range(n_days)}


def _epoch_day(day: date) -> int:
    return int(epoch_days(np.array([day], dtype="datetime64[D]"))[0])


def _times(table: pa.Table) -> np.ndarray:
    return table.column(TX_DATETIME).cast(pa.timestamp("us")).to_numpy()


def score_test_stream(
    path: Path,
    features: tuple[str, ...],
    periods: Periods,
    score: Callable[[np.ndarray], np.ndarray],
    sample_rows: int = SAMPLE_ROWS,
) -> ScoredTest:
    """Score the handbook's test set of a feature Parquet with ``score`` (features float32 ->
    scores), one row group at a time; the rows in file order.

    The sample is the test set's first ``sample_rows`` rows; 0 keeps none (an empty frame
    with the sample's columns), a negative count is a ``ValueError``.
    """
    if sample_rows < 0:
        raise ValueError(f"sample_rows must be 0 or more, not {sample_rows}")
    known = _known_by_day(path, periods)
    sample: list[pd.DataFrame] = []
    held = 0
    columns = [TRANSACTION_ID, *features, CUSTOMER_ID, TX_DATETIME, TX_FRAUD]
    with ParquetRows(path, features, periods.test_start, periods.test_end) as rows:
        # Room for every row of the test days (the known cards' few rows are cut at the end).
        labels, scores = np.empty(len(rows), np.int8), np.empty(len(rows), np.float32)
        days, cards = np.empty(len(rows), np.int64), np.empty(len(rows), np.int64)
        filled = 0
        for table in rows.read(columns):
            day = epoch_days(_times(table))
            card = table.column(CUSTOMER_ID).to_numpy()
            keep = np.ones(len(day), dtype=bool)
            for d in np.unique(day):
                on_day = day == d
                keep[on_day] = ~np.isin(card[on_day], known[int(d)])
            kept = table.filter(pa.array(keep))
            matrix = np.empty((kept.num_rows, len(features)), dtype=np.float32)
            for j, name in enumerate(features):
                matrix[:, j] = kept.column(name).to_numpy()
            end = filled + kept.num_rows
            scores[filled:end] = score(matrix)
            labels[filled:end] = kept.column(TX_FRAUD).to_numpy()
            days[filled:end], cards[filled:end] = day[keep], card[keep]
            filled = end
            if held < sample_rows or not sample:  # the first group even if empty: the columns
                sample.append(kept.slice(0, sample_rows - held).to_pandas())
                held += len(sample[-1])
    scored = Scored(labels[:filled], scores[:filled], days[:filled], cards[:filled])
    frame = pd.concat(sample, ignore_index=True) if sample else pd.DataFrame(columns=columns)
    return ScoredTest(scored, frame)
