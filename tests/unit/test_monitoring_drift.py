"""Evidently drift on the simulator's windows: quiet without drift, loud on inflated amounts."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from vigil.config import MonitoringConfig, build_settings
from vigil.data.simulate import simulate_transactions
from vigil.monitoring.drift import detect_drift

COLUMNS = ["tx_amount", "hour"]
SHIFT_DAY = 14


def windows(scenario: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Days 0-13 (reference) and 14-27 (current) of a small simulated world."""
    settings = build_settings(
        {
            "data": {
                "n_customers": 300,
                "n_terminals": 600,
                "n_days": 2 * SHIFT_DAY,
                "drift": {"scenario": scenario, "start_day": SHIFT_DAY, "strength": 2.0},
            }
        }
    )
    tx = simulate_transactions(settings.data)
    tx["hour"] = tx["tx_datetime"].dt.hour.astype("float64")
    day = (tx["tx_datetime"] - tx["tx_datetime"].min()).dt.days
    return tx[day < SHIFT_DAY], tx[day >= SHIFT_DAY]


def test_same_distribution_does_not_drift() -> None:
    reference, current = windows("none")
    result = detect_drift(reference, current, COLUMNS, MonitoringConfig())
    assert not result.dataset_drift
    assert result.drifted_columns == []
    assert all(c.score < c.threshold for c in result.columns)


def test_inflated_amounts_drift_and_the_report_is_written(tmp_path: Path) -> None:
    reference, current = windows("amount_inflation")
    html = tmp_path / "report" / "drift.html"
    result = detect_drift(reference, current, COLUMNS, MonitoringConfig(), html_path=html)
    scores = result.scores
    assert result.drifted_columns == ["tx_amount"]
    assert scores["tx_amount"] >= 0.25  # the "significant shift" level of the PSI alert
    assert scores["hour"] < 0.1
    # One of two columns drifted: share 0.5 reaches the default drift_share of 0.5.
    assert result.drifted_share == 0.5 and result.dataset_drift
    assert (result.reference_rows, result.current_rows) == (len(reference), len(current))
    assert "tx_amount" in html.read_text()
    assert json.loads(json.dumps(result.as_dict()))["drifted_share"] == 0.5  # the mart's form


def test_missing_columns_and_empty_windows_are_rejected() -> None:
    frame = pd.DataFrame({"tx_amount": [1.0, 2.0]})
    with pytest.raises(ValueError, match="lacks column"):
        detect_drift(frame, frame, ["tx_amount", "hour"], MonitoringConfig())
    with pytest.raises(ValueError, match="no rows"):
        detect_drift(frame.iloc[:0], frame, ["tx_amount"], MonitoringConfig())
