"""Data-quality report of a transaction frame: counts, missing values, stats, daily fraud rate."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict

from vigil.data import schema

logger = logging.getLogger(__name__)


class ColumnStats(BaseModel):
    """Summary of one column (numeric stats only for numeric columns)."""

    model_config = ConfigDict(frozen=True)

    dtype: str
    missing: int
    distinct: int
    min: float | str | None = None
    max: float | str | None = None
    mean: float | None = None
    std: float | None = None


class DailyFraud(BaseModel):
    """Transactions and frauds on one day."""

    model_config = ConfigDict(frozen=True)

    day: str
    transactions: int
    frauds: int
    fraud_rate: float


class QualityReport(BaseModel):
    """The data-quality report saved by ``vigil validate --report``."""

    model_config = ConfigDict(frozen=True)

    rows: int
    duplicate_ids: int
    first_timestamp: str | None
    last_timestamp: str | None
    columns: dict[str, ColumnStats]
    fraud_rate: float | None
    daily: list[DailyFraud]

    def save(self, path: Path) -> None:
        """Write the report as indented JSON."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=2))
        logger.info("quality report written to %s", path)


def _column_stats(series: pd.Series) -> ColumnStats:
    present = series.dropna()
    stats = ColumnStats(
        dtype=str(series.dtype), missing=int(series.isna().sum()), distinct=int(present.nunique())
    )
    if present.empty:
        return stats
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        if pd.api.types.is_datetime64_any_dtype(series):
            return stats.model_copy(update={"min": str(present.min()), "max": str(present.max())})
        return stats
    return stats.model_copy(
        update={
            "min": float(present.min()),
            "max": float(present.max()),
            "mean": float(present.mean()),
            "std": float(present.std()) if len(present) > 1 else 0.0,
        }
    )


def _daily_fraud(frame: pd.DataFrame) -> list[DailyFraud]:
    if schema.TX_FRAUD not in frame.columns or schema.TX_DATETIME not in frame.columns:
        return []
    timestamps = pd.to_datetime(frame[schema.TX_DATETIME], errors="coerce")
    labels = pd.to_numeric(frame[schema.TX_FRAUD], errors="coerce")
    grouped = labels.groupby(timestamps.dt.date).agg(["size", "sum"])
    return [
        DailyFraud(
            day=str(day), transactions=int(n), frauds=int(frauds), fraud_rate=float(frauds / n)
        )
        for day, (n, frauds) in grouped.iterrows()
    ]


def quality_report(frame: pd.DataFrame) -> QualityReport:
    """Profile ``frame``; works on invalid data too (that is what it is for)."""
    ids = frame[schema.TRANSACTION_ID] if schema.TRANSACTION_ID in frame.columns else None
    timestamps = (
        pd.to_datetime(frame[schema.TX_DATETIME], errors="coerce").dropna()
        if schema.TX_DATETIME in frame.columns
        else pd.Series(dtype="datetime64[us]")
    )
    labels = (
        pd.to_numeric(frame[schema.TX_FRAUD], errors="coerce")
        if schema.TX_FRAUD in frame.columns
        else None
    )
    return QualityReport(
        rows=len(frame),
        duplicate_ids=int(ids.duplicated().sum()) if ids is not None else 0,
        first_timestamp=str(timestamps.min()) if not timestamps.empty else None,
        last_timestamp=str(timestamps.max()) if not timestamps.empty else None,
        columns={str(c): _column_stats(frame[c]) for c in frame.columns},
        fraud_rate=float(labels.mean()) if labels is not None and len(frame) else None,
        daily=_daily_fraud(frame),
    )
