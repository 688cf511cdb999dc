"""The daily pipeline's steps as plain functions (no Dagster): the assets only call these.

Day ``D`` of the daily job:

1. ``check_raw_day``: the raw partition of ``D`` against the data contract;
2. ``build_feature_mart``: point-in-time features of the monitoring horizon (the
   ``drift_reference_days + drift_current_days`` days up to ``D``), one file per day, from the
   raw partitions plus the look-back the feature windows need;
3. ``score_day``: the serving model's decisions on ``D`` (``vigil predict``'s code);
4. ``drift_for_day``: Evidently drift of the current window against the reference window;
5. ``performance_for_day``: stored decisions judged by the labels that arrived.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine

from vigil.config import Settings
from vigil.data.contracts import validate_transactions
from vigil.data.io import partition_dir, read_transactions
from vigil.data.quality import QualityReport, quality_report
from vigil.data.schema import TRANSACTION_ID, TX_DATETIME
from vigil.features.definitions import feature_lookback_days, feature_names
from vigil.features.offline import compute_features_frame
from vigil.inference.batch import PredictionSummary, predict_file, write_atomically
from vigil.monitoring import marts
from vigil.monitoring.drift import DriftResult, detect_drift
from vigil.monitoring.performance import SCORE, PerformanceReport, delayed_label_performance
from vigil.monitoring.queries import business_totals, labelled_predictions

logger = logging.getLogger(__name__)


class NoDataInWindow(FileNotFoundError):
    """A drift window holds no feature-mart day (e.g. the first days of the data)."""


@dataclass(frozen=True)
class FeatureMartSummary:
    """What one feature-mart build wrote."""

    days: tuple[date, ...]
    rows: int
    paths: tuple[Path, ...]


def day_range(first: date, last: date) -> list[date]:
    """Every day from ``first`` to ``last``, both included."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def raw_partition(settings: Settings, day: date) -> Path:
    """The raw Parquet directory of ``day``."""
    return partition_dir(settings.data.raw_dir, pd.Timestamp(day))


def check_raw_day(settings: Settings, day: date) -> QualityReport:
    """Read ``day``'s raw partition, enforce the contract, return its quality report."""
    path = raw_partition(settings, day)
    if not path.is_dir():
        raise FileNotFoundError(f"no raw partition for {day} at {path}")
    return quality_report(validate_transactions(read_transactions(path)))


def horizon(settings: Settings, day: date) -> list[date]:
    """The reference and current drift windows ending on ``day``, oldest day first."""
    monitoring = settings.monitoring
    n_days = monitoring.drift_reference_days + monitoring.drift_current_days
    return day_range(day - timedelta(days=n_days - 1), day)


def read_raw_days(settings: Settings, first: date, last: date) -> pd.DataFrame:
    """Raw transactions of the partitions from ``first`` to ``last`` that exist."""
    paths = [raw_partition(settings, d) for d in day_range(first, last)]
    frames = [read_transactions(p) for p in paths if p.is_dir()]
    if not frames:
        raise FileNotFoundError(f"no raw partition between {first} and {last}")
    return pd.concat(frames, ignore_index=True)


def build_feature_mart(settings: Settings, day: date) -> FeatureMartSummary:
    """Features of every day in the horizon ending on ``day`` that has raw data."""
    days = horizon(settings, day)
    first_needed = days[0] - timedelta(days=feature_lookback_days(settings.features))
    raw = validate_transactions(read_raw_days(settings, first_needed, day))
    table = compute_features_frame(settings.features, raw)
    table_days = table[TX_DATETIME].dt.date
    written, paths, rows = [], [], 0
    for d in days:
        rows_of_day = table[table_days == d].sort_values([TX_DATETIME, TRANSACTION_ID])
        if rows_of_day.empty:
            continue
        path = marts.day_partition(settings.monitoring.marts_dir, marts.FEATURES, d)
        write_atomically(rows_of_day.reset_index(drop=True), path)
        written.append(d)
        paths.append(path)
        rows += len(rows_of_day)
    if day not in written:
        raise ValueError(f"{day} has no transactions: nothing to score or monitor")
    logger.info("feature mart: %d rows over %d days up to %s", rows, len(written), day)
    return FeatureMartSummary(tuple(written), rows, tuple(paths))


def score_day(settings: Settings, day: date, model_path: Path | None = None) -> PredictionSummary:
    """Score ``day``'s feature-mart rows with the serving model into the scores mart."""
    marts_dir = settings.monitoring.marts_dir
    return predict_file(
        settings,
        marts.day_partition(marts_dir, marts.FEATURES, day),
        marts.day_partition(marts_dir, marts.SCORES, day),
        model_path=model_path,
        features_precomputed=True,
        progress=False,
    )


def _window(settings: Settings, days: list[date], with_scores: bool) -> pd.DataFrame:
    """Feature-mart rows of ``days`` (those present), with their batch score if asked."""
    marts_dir = settings.monitoring.marts_dir
    frames = []
    for d in days:
        path = marts.day_partition(marts_dir, marts.FEATURES, d)
        if not path.is_file():
            continue
        frame = pd.read_parquet(path)
        if with_scores:
            scores = pd.read_parquet(marts.day_partition(marts_dir, marts.SCORES, d))
            frame = frame.merge(scores[[TRANSACTION_ID, SCORE]], on=TRANSACTION_ID)
        frames.append(frame)
    if not frames:
        raise NoDataInWindow(f"feature mart holds none of the days {days[0]}..{days[-1]}")
    return pd.concat(frames, ignore_index=True)


def _scored_everywhere(settings: Settings, days: list[date]) -> bool:
    marts_dir = settings.monitoring.marts_dir
    return all(
        marts.day_partition(marts_dir, marts.SCORES, d).is_file()
        for d in days
        if marts.day_partition(marts_dir, marts.FEATURES, d).is_file()
    )


def drift_for_day(settings: Settings, day: date) -> DriftResult:
    """Drift of the current window (ending on ``day``) against the reference window before it.

    ``monitoring.drift_columns`` picks the columns; by default every model feature, and the
    model's score when every day of both windows has been scored.
    """
    days = horizon(settings, day)
    n_reference = settings.monitoring.drift_reference_days
    columns = list(settings.monitoring.drift_columns)
    if columns:
        with_scores = SCORE in columns
    else:
        with_scores = _scored_everywhere(settings, days)
        columns = [*feature_names(settings.features), *([SCORE] if with_scores else [])]
    reference = _window(settings, days[:n_reference], with_scores)
    current = _window(settings, days[n_reference:], with_scores)
    marts_dir = settings.monitoring.marts_dir
    html = marts.document_path(marts_dir, marts.DRIFT, day, ".html")
    result = detect_drift(reference, current, columns, settings.monitoring, html_path=html)
    marts.publish(marts_dir, marts.DRIFT, day, {"day": day.isoformat(), **result.as_dict()})
    return result


def performance_for_day(settings: Settings, engine: Engine, day: date) -> PerformanceReport:
    """Delayed-label performance of the ``performance_days`` up to ``day``, plus running totals."""
    start = day - timedelta(days=settings.monitoring.performance_days - 1)
    with engine.connect() as connection:
        frame = labelled_predictions(connection, start, day)
        totals = business_totals(connection)
    report = delayed_label_performance(frame, start, day, settings.train, totals)
    marts.publish(settings.monitoring.marts_dir, marts.PERFORMANCE, day, report.as_dict())
    return report
