"""``vigil eda``: exploratory data analysis of a transaction dataset, as HTML with PNG plots.

Sections: data collection and cleaning, amounts by class and scenario, fraud by day, hour,
customer and terminal, feature distributions and correlations, the label-delay effect and
drift between two periods. Every number in the findings is computed here from the data.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vigil.config import Settings
from vigil.data import schema
from vigil.data.io import read_transactions
from vigil.features.definitions import feature_names
from vigil.features.offline import compute_features_frame
from vigil.monitoring.drift import detect_drift
from vigil.reports import eda_plots, eda_stats
from vigil.reports.eda_html import render_html

logger = logging.getLogger(__name__)

DELAYS = range(0, 29)
DRIFT_PERIOD_DAYS = 28
FINDINGS_FILE = "findings.json"


@dataclass(frozen=True)
class EdaResult:
    """What ``vigil eda`` wrote and the computed findings."""

    output_dir: Path
    html: Path
    findings: list[str]
    figures: dict[str, str]


def _sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    return frame if len(frame) <= rows else frame.sample(rows, random_state=seed)


def _pct(value: float) -> str:
    return f"{value:.2%}"


def quality_findings(q: eda_stats.Quality) -> list[str]:
    """Size, defects, what cleaning removes and the outliers, in words."""
    missing = sum(q.missing.values())
    removed = q.rows - q.rows_after_cleaning
    return [
        f"{q.rows:,} transactions over {q.days} days ({q.first_day} to {q.last_day}) from "
        f"{q.customers:,} customers at {q.terminals:,} terminals; fraud rate {_pct(q.fraud_rate)}.",
        f"{missing:,} missing values, {q.duplicate_ids:,} duplicate transaction ids, "
        f"{q.duplicate_rows:,} rows repeating another's time, customer, terminal and amount, "
        f"{q.negative_amounts:,} negative and {q.zero_amounts:,} zero amounts: cleaning "
        f"removes {removed:,} rows ({removed / max(q.rows, 1):.3%}).",
        f"{q.outliers:,} amounts are above Q3 + 3 IQR ({q.outlier_threshold:,.2f}); their "
        f"fraud rate is {_pct(q.outlier_fraud_rate)} against {_pct(q.fraud_rate)} overall, "
        "so they are signal and are kept.",
    ]


def _amount_findings(frame: pd.DataFrame) -> list[str]:
    medians = frame.groupby(schema.TX_FRAUD)[schema.TX_AMOUNT].median()
    lines = [
        f"Median amount: {medians.get(0, float('nan')):.2f} genuine, "
        f"{medians.get(1, float('nan')):.2f} fraud."
    ]
    if schema.TX_FRAUD_SCENARIO in frame.columns:
        counts = frame[schema.TX_FRAUD_SCENARIO].value_counts().sort_index()
        parts = [
            f"{schema.SCENARIO_NAMES.get(int(str(s)), s)} {n:,}"
            for s, n in counts.items()
            if s != 0
        ]
        lines.append("Frauds by scenario: " + ", ".join(parts) + ".")
    return lines


def _time_findings(daily: pd.DataFrame, hourly: pd.DataFrame, frame: pd.DataFrame) -> list[str]:
    weekend = frame[schema.TX_DATETIME].dt.weekday >= 5
    by_weekend = frame[schema.TX_FRAUD].groupby(weekend).mean()
    peak = int(str(hourly["fraud_rate"].idxmax()))
    return [
        f"Daily fraud rate ranges from {_pct(daily['fraud_rate'].min())} to "
        f"{_pct(daily['fraud_rate'].max())} (median {_pct(daily['fraud_rate'].median())}).",
        f"By hour it peaks at {peak}:00 ({_pct(float(hourly['fraud_rate'].loc[peak]))}); weekend "
        f"{_pct(by_weekend.get(True, float('nan')))} against weekdays "
        f"{_pct(by_weekend.get(False, float('nan')))}.",
    ]


def _entity_findings(frame: pd.DataFrame, customers: pd.DataFrame, terminals: pd.DataFrame) -> str:
    share_customers = len(customers) / frame[schema.CUSTOMER_ID].nunique()
    top = max(1, len(terminals) // 10)
    top_share = float(terminals["cumulative_share"].iloc[top - 1]) if len(terminals) else 0.0
    return (
        f"{_pct(share_customers)} of customers had at least one fraud; the 10 % of fraudulent "
        f"terminals with the most frauds ({top:,}) carry {_pct(top_share)} of all frauds."
    )


def _feature_findings(matrix: pd.DataFrame) -> str:
    with_label = matrix[schema.TX_FRAUD].drop(schema.TX_FRAUD).abs().sort_values(ascending=False)
    top = ", ".join(
        f"{name} ({matrix.loc[name, schema.TX_FRAUD]:+.2f})" for name in with_label.index[:3]
    )
    between = matrix.drop(index=schema.TX_FRAUD, columns=schema.TX_FRAUD).abs()
    upper = between.where(np.triu(np.ones(between.shape, dtype=bool), k=1))
    pairs = pd.Series(upper.stack()).sort_values(ascending=False)
    (first, second), value = pairs.index[0], float(pairs.iloc[0])
    return (
        f"Features most correlated with the label: {top}. Most redundant pair: {first} and "
        f"{second} (|r| = {value:.2f})."
    )


def _delay_finding(visibility: pd.DataFrame, delay_days: int) -> str:
    if visibility.empty or visibility.columns.empty:
        return "No fraud scenario column: the label-delay effect cannot be measured."
    parts = [
        f"{name}: {_pct(float(visibility[name].iloc[0]))} with instant labels, "
        f"{_pct(float(visibility[name].loc[delay_days]))} with a {delay_days}-day delay"
        for name in visibility.columns
    ]
    return (
        "Frauds made after the compromise is known (catchable by entity risk): "
        + "; ".join(parts)
        + "."
    )


def _drift_finding(scores: pd.Series, threshold: float, rows: tuple[int, int]) -> str:
    drifted = scores[scores >= threshold].sort_values(ascending=False)
    top = str(scores.idxmax())
    return (
        f"Between the reference period ({rows[0]:,} rows) and the last {DRIFT_PERIOD_DAYS} days "
        f"({rows[1]:,} rows) {len(drifted)} of {len(scores)} columns drift (PSI >= {threshold}); "
        f"the largest is {top} (PSI {scores[top]:.3f})."
    )


def run_eda(settings: Settings, input_path: Path, output_dir: Path, sample_rows: int) -> EdaResult:
    """Read ``input_path``, analyse it and write ``output_dir/index.html`` with its plots."""
    raw = read_transactions(input_path)
    output_dir.mkdir(parents=True, exist_ok=True)
    quality = eda_stats.quality(raw)
    frame = eda_stats.clean(raw)
    seed = settings.data.seed
    figures: dict[str, str] = {}

    def figure(name: str) -> Path:
        figures[name] = f"{name}.png"
        return output_dir / figures[name]

    eda_plots.amounts(_sample(frame, sample_rows, seed), figure("amounts"))
    daily = eda_stats.rate_by(frame, frame[schema.TX_DATETIME].dt.date)
    hourly = eda_stats.rate_by(frame, frame[schema.TX_DATETIME].dt.hour)
    eda_plots.by_time(daily, hourly, figure("fraud_by_time"))
    customers = eda_stats.fraud_concentration(frame, schema.CUSTOMER_ID)
    terminals = eda_stats.fraud_concentration(frame, schema.TERMINAL_ID)
    eda_plots.concentration(customers, terminals, figure("fraud_by_entity"))

    names = feature_names(settings.features)
    features = compute_features_frame(settings.features, frame)
    sampled = _sample(features, sample_rows, seed)
    labels = sampled[schema.TX_FRAUD].to_numpy()
    eda_plots.feature_distributions(sampled, labels, names, figure("feature_distributions"))
    matrix = sampled[[*names, schema.TX_FRAUD]].astype(float).corr().fillna(0.0)
    eda_plots.correlations(matrix, figure("feature_correlations"))

    delay_days = settings.features.label_delay_days
    visibility = eda_stats.delay_visibility(frame, DELAYS)
    if not visibility.columns.empty:
        eda_plots.delay(visibility, delay_days, figure("label_delay"))

    reference, current = eda_stats.split_periods(features, DRIFT_PERIOD_DAYS)
    drift_columns = [*names]
    drift = detect_drift(
        _sample(reference, sample_rows, seed),
        _sample(current, sample_rows, seed),
        drift_columns,
        settings.monitoring,
    )
    scores = pd.Series(drift.scores)
    eda_plots.drift(scores, settings.monitoring.drift_threshold, figure("drift"))

    findings = [
        *quality_findings(quality),
        *_amount_findings(frame),
        *_time_findings(daily, hourly, frame),
        _entity_findings(frame, customers, terminals),
        _feature_findings(matrix),
        _delay_finding(visibility, delay_days),
        _drift_finding(scores, settings.monitoring.drift_threshold, (len(reference), len(current))),
    ]
    context: dict[str, Any] = {
        "source": str(input_path),
        "quality": asdict(quality),
        "findings": findings,
        "figures": figures,
        "scenarios": _scenario_table(frame),
        "sample_rows": sample_rows,
        "delay_days": delay_days,
    }
    html = output_dir / "index.html"
    html.write_text(render_html(context))
    (output_dir / FINDINGS_FILE).write_text(json.dumps(context, indent=2, default=str))
    logger.info("EDA report written to %s", html)
    return EdaResult(output_dir, html, findings, figures)


def _scenario_table(frame: pd.DataFrame) -> list[dict[str, Any]]:
    if schema.TX_FRAUD_SCENARIO not in frame.columns:
        return []
    grouped = frame.groupby(schema.TX_FRAUD_SCENARIO)[schema.TX_AMOUNT]
    return [
        {
            "scenario": schema.SCENARIO_NAMES.get(int(str(s)), str(s)),
            "transactions": len(amounts),
            "share": len(amounts) / len(frame),
            "median_amount": float(amounts.median()),
            "p99_amount": float(amounts.quantile(0.99)),
        }
        for s, amounts in grouped
    ]
