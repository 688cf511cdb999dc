"""Append labelled transactions to the training data: all rows valid, or nothing written.

The training data is the day-partitioned Parquet dataset under ``data.raw_dir``. A batch is
parsed, mapped onto the schema and checked against the data contract as a whole; only then
are its new rows written, as one extra file per day, staged first and moved into place so a
reader never sees half a batch. Rows whose ``transaction_id`` is already known (in the data
or earlier in the batch) are reported and skipped. A hook (the verdicts' storage) runs with the
new rows before their files are written, so an upload that fails part-way is safely retried:
whatever a failed attempt wrote is either redone or recognised by ``transaction_id``; the hook
may also refuse the batch (a row that names a scored transaction but describes another).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from vigil.data import schema
from vigil.data.contracts import DataContractError, validate_transactions
from vigil.data.io import DataFormatError, partition_dir, read_csv, to_schema
from vigil.data.transaction import DEFAULT_POLICY, EventTimePolicy
from vigil.features import Label
from vigil.features.replay import as_labels

logger = logging.getLogger(__name__)

MAX_REPORTED_DUPLICATES = 100


@dataclass(frozen=True)
class AddDataResult:
    """What one upload did."""

    received: int
    appended: int
    duplicates: int
    duplicate_ids: list[int]
    files: list[str]
    labels: list[Label] = field(default_factory=list)  # every valid row's verdict, known or new


class RejectedData(ValueError):
    """An uploaded batch broke the data contract; nothing was written (HTTP 422)."""


def parse_csv(payload: bytes) -> pd.DataFrame:
    """Read an uploaded CSV; :class:`RejectedData` when it is not parseable CSV."""
    if b"\x00" in payload:  # the CSV parser would cut a field at the NUL ('12\x005' -> 12)
        raise RejectedData("not a readable CSV file: it holds NUL bytes")
    try:
        return read_csv(payload)
    except (ValueError, UnicodeDecodeError) as error:  # pandas' parser errors are ValueErrors
        raise RejectedData(f"not a readable CSV file: {error}") from None


def _validated(frame: pd.DataFrame, event_time: EventTimePolicy) -> pd.DataFrame:
    """The batch in schema dtypes with labels required; every problem listed on failure."""
    if frame.empty:
        raise RejectedData("the file holds no rows")
    try:
        return validate_transactions(to_schema(frame), require_labels=True, policy=event_time)
    except (DataFormatError, DataContractError) as error:
        raise RejectedData(str(error)) from None


class TrainingData:
    """The labelled training dataset on disk; appends are serialised by a lock."""

    def __init__(self, raw_dir: Path, event_time: EventTimePolicy = DEFAULT_POLICY) -> None:
        self.raw_dir = raw_dir
        self._event_time = event_time
        self._lock = threading.Lock()

    def _files(self) -> list[Path]:
        return sorted(self.raw_dir.rglob("*.parquet")) if self.raw_dir.exists() else []

    def known_ids(self) -> set[int]:
        """Every ``transaction_id`` already in the training data."""
        files = self._files()
        if not files:
            return set()
        dataset = ds.dataset([str(f) for f in files], format="parquet")
        ids = dataset.to_table(columns=[schema.TRANSACTION_ID]).column(0)
        return set(ids.to_pylist())

    def _target_schema(self, frame: pd.DataFrame) -> pa.Schema:
        """Existing files' schema (so DuckDB reads old and new files as one dataset)."""
        files = self._files()
        if not files:
            return pa.Table.from_pandas(frame, preserve_index=False).schema
        return pq.read_schema(files[0]).remove_metadata()

    def _conform(self, frame: pd.DataFrame, target: pa.Schema) -> pa.Table:
        frame = frame.copy()
        if schema.TX_FRAUD_SCENARIO in target.names and schema.TX_FRAUD_SCENARIO not in frame:
            # Uploaded labels do not say which fraud pattern it was; 0 means "not recorded".
            frame[schema.TX_FRAUD_SCENARIO] = 0
        missing = [name for name in target.names if name not in frame.columns]
        if missing:
            raise RejectedData(f"training data needs column(s) {missing} that the file lacks")
        return pa.Table.from_pandas(frame[target.names], schema=target, preserve_index=False)

    def append(
        self,
        frame: pd.DataFrame,
        before_write: Callable[[pd.DataFrame], None] | None = None,
    ) -> AddDataResult:
        """Validate the whole batch, skip known ids, write the rest; nothing written on error.

        ``before_write`` receives the new rows (validated, schema dtypes) before their files are
        written (if it raises, nothing is written); it runs under the append lock.
        """
        received = len(frame)
        repeats: list[object] = []
        if schema.TRANSACTION_ID in frame.columns:
            # Repeats inside the batch are reported like repeats of stored rows, not rejected.
            in_batch = frame[schema.TRANSACTION_ID].duplicated()
            repeats = frame.loc[in_batch, schema.TRANSACTION_ID].tolist()
            frame = frame[~in_batch]
        batch = _validated(frame, self._event_time)
        with self._lock:
            known = batch[schema.TRANSACTION_ID].isin(self.known_ids())
            fresh = batch[~known]
            if before_write is not None and len(fresh):
                before_write(fresh)
            files = self._write(fresh) if len(fresh) else []
        duplicate_ids = sorted(
            {int(i) for i in [*repeats, *batch.loc[known, schema.TRANSACTION_ID]]}
        )
        logger.info(
            "add_data: %d received, %d appended, %d duplicate(s)",
            received,
            len(fresh),
            received - len(fresh),
        )
        return AddDataResult(
            received=received,
            appended=len(fresh),
            duplicates=received - len(fresh),
            duplicate_ids=duplicate_ids[:MAX_REPORTED_DUPLICATES],
            files=[str(f) for f in files],
            labels=as_labels(batch),
        )

    def _write(self, frame: pd.DataFrame) -> list[Path]:
        """Stage one file per day, then move each into its partition."""
        target = self._target_schema(frame)
        part = f"added-{uuid.uuid4().hex[:12]}.parquet"
        self.raw_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.raw_dir.parent))
        try:
            staged = []
            for day, rows in frame.groupby(frame[schema.TX_DATETIME].dt.normalize(), sort=True):
                relative = partition_dir(Path(), pd.Timestamp(day)) / part
                (staging / relative).parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(self._conform(rows, target), staging / relative)
                staged.append(relative)
            for relative in staged:
                (self.raw_dir / relative).parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / relative, self.raw_dir / relative)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return [self.raw_dir / relative for relative in staged]
