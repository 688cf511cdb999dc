"""Feature and score drift between a reference and a current window, measured by Evidently.

Evidently's ``DataDriftPreset`` runs one stattest per column (``monitoring.drift_method``,
PSI by default, which is what the ``vigil_feature_drift_psi`` gauge and the
``VigilFeatureDrift`` alert expect) and its tests decide: a column drifts when its score
reaches ``drift_threshold``; the dataset drifts when at least ``drift_share`` of the columns
do. This module only reads Evidently's verdicts into a typed result.

Evidently takes seconds to import, so it is imported inside :func:`detect_drift`; serving
never imports this module.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from vigil.config import MonitoringConfig

logger = logging.getLogger(__name__)

COLUMN_DRIFT_METRIC = "evidently:metric_v2:ValueDrift"
DRIFTED_COLUMNS_METRIC = "evidently:metric_v2:DriftedColumnsCount"
FAILED = "FAIL"


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift score (the stattest's statistic) and Evidently's verdict."""

    column: str
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    """Per-column drift, the share of drifted columns and the dataset verdict."""

    columns: tuple[ColumnDrift, ...]
    drifted_count: int
    drifted_share: float
    drift_share: float
    dataset_drift: bool
    reference_rows: int
    current_rows: int

    @property
    def scores(self) -> dict[str, float]:
        """Drift score by column."""
        return {c.column: c.score for c in self.columns}

    @property
    def drifted_columns(self) -> list[str]:
        """Names of the columns Evidently found drifted."""
        return [c.column for c in self.columns if c.drifted]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the drift mart's document)."""
        return asdict(self)


def _check_inputs(reference: pd.DataFrame, current: pd.DataFrame, columns: Sequence[str]) -> None:
    if not columns:
        raise ValueError("drift needs at least one column")
    for name, frame in (("reference", reference), ("current", current)):
        if frame.empty:
            raise ValueError(f"the {name} window holds no rows")
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"the {name} window lacks column(s) {missing}")


def _status(test: dict[str, Any]) -> str:
    status = test["status"]
    return str(getattr(status, "value", status))


def _read_verdicts(
    snapshot_dict: dict[str, Any], config: MonitoringConfig
) -> tuple[list[ColumnDrift], float, bool]:
    """Column results, drifted share and dataset verdict from ``Snapshot.dict()``."""
    drifted = {
        test["metric_config"]["params"]["column"]: _status(test) == FAILED
        for test in snapshot_dict["tests"]
        if test["metric_config"]["params"]["type"] == COLUMN_DRIFT_METRIC
    }
    dataset_tests = [
        _status(test) == FAILED
        for test in snapshot_dict["tests"]
        if test["metric_config"]["params"]["type"] == DRIFTED_COLUMNS_METRIC
    ]
    columns, share = [], 0.0
    for metric in snapshot_dict["metrics"]:
        params = metric["config"]
        if params["type"] == COLUMN_DRIFT_METRIC:
            column = params["column"]
            columns.append(
                ColumnDrift(
                    column=column,
                    method=str(params["method"]),
                    score=float(metric["value"]),
                    threshold=float(params.get("threshold", config.drift_threshold)),
                    drifted=drifted[column],
                )
            )
        elif params["type"] == DRIFTED_COLUMNS_METRIC:
            share = float(metric["value"]["share"])
    if len(dataset_tests) != 1:
        raise RuntimeError(f"expected one dataset drift test from Evidently, got {dataset_tests}")
    return columns, share, dataset_tests[0]


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str],
    config: MonitoringConfig,
    html_path: Path | None = None,
) -> DriftResult:
    """Compare ``current`` with ``reference`` on numeric ``columns``; optionally save the report."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    _check_inputs(reference, current, columns)
    names = list(columns)
    definition = DataDefinition(numerical_columns=names)
    preset = DataDriftPreset(
        columns=names,
        method=config.drift_method,
        threshold=config.drift_threshold,
        drift_share=config.drift_share,
    )
    report = Report([preset], include_tests=True)
    with warnings.catch_warnings():
        # Constant columns (e.g. no risky terminal in a window) make Evidently's histogram
        # code divide 0 by 0; the stattest still answers, so the numpy warning is noise.
        warnings.simplefilter("ignore", RuntimeWarning)
        snapshot = report.run(
            Dataset.from_pandas(current[names], data_definition=definition),
            Dataset.from_pandas(reference[names], data_definition=definition),
        )
        if html_path is not None:
            html_path.parent.mkdir(parents=True, exist_ok=True)
            snapshot.save_html(str(html_path))
    column_results, share, dataset_drift = _read_verdicts(snapshot.dict(), config)
    result = DriftResult(
        columns=tuple(column_results),
        drifted_count=sum(c.drifted for c in column_results),
        drifted_share=share,
        drift_share=config.drift_share,
        dataset_drift=dataset_drift,
        reference_rows=len(reference),
        current_rows=len(current),
    )
    logger.info(
        "drift (%s): %d of %d columns drifted%s",
        config.drift_method,
        result.drifted_count,
        len(column_results),
        "; dataset drift" if dataset_drift else "",
    )
    return result
