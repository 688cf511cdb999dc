"""``vigil eda``: the report is built from the data, and its findings carry the data's numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from vigil.cli import app
from vigil.data import schema
from vigil.data.io import read_transactions
from vigil.reports import eda_stats
from vigil.reports.eda import quality_findings

runner = CliRunner()
WORLD = ["--set", "data.n_customers=120", "--set", "data.n_terminals=240"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulator's output over 50 days."""
    folder = tmp_path_factory.mktemp("eda")
    args = ["generate", *WORLD, "--set", "data.n_days=50", "--out", str(folder / "raw")]
    result = runner.invoke(app, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    return folder


def test_eda_on_the_simulator_output_writes_every_plot_and_computed_findings(
    simulated: Path,
) -> None:
    out = simulated / "report"
    result = runner.invoke(
        app,
        ["eda", "--input", str(simulated / "raw"), "--output", str(out), "--sample-rows", "5000"],
    )
    assert result.exit_code == 0, result.output
    frame = read_transactions(simulated / "raw")
    html = (out / "index.html").read_text()
    saved = json.loads((out / "findings.json").read_text())
    assert set(saved["figures"]) >= {"amounts", "fraud_by_time", "feature_correlations", "drift"}
    for name in saved["figures"].values():
        assert name in html
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    first = saved["findings"][0]
    assert first.startswith(f"{len(frame):,} transactions over 50 days")
    assert f"fraud rate {frame[schema.TX_FRAUD].mean():.2%}" in first
    assert "Data collection and cleaning" in html


def test_findings_count_the_defects_cleaning_removes(simulated: Path) -> None:
    frame = read_transactions(simulated / "raw")
    broken = pd.concat([frame, frame.head(3)], ignore_index=True)  # 3 duplicated ids
    broken.loc[len(broken) - 1, schema.TX_AMOUNT] = -5.0  # and one is negative too
    text = " ".join(quality_findings(eda_stats.quality(broken)))
    assert "3 duplicate transaction ids" in text
    assert "1 negative" in text
    assert "cleaning removes 3 rows" in text  # the negative row is also a duplicate
    assert len(eda_stats.clean(broken)) == len(frame)


def test_delay_visibility_counts_frauds_after_the_first_is_known() -> None:
    day = pd.Timestamp("2018-04-01")
    frame = pd.DataFrame(
        {
            schema.TX_DATETIME: [day, day + pd.Timedelta(days=3), day + pd.Timedelta(days=10)],
            schema.TERMINAL_ID: [7, 7, 7],
            schema.CUSTOMER_ID: [1, 2, 3],
            schema.TX_FRAUD: [1, 1, 1],
            schema.TX_FRAUD_SCENARIO: [2, 2, 2],
        }
    )
    table = eda_stats.delay_visibility(frame, range(0, 12))
    assert table.loc[0, "compromised terminal"] == pytest.approx(2 / 3)
    assert table.loc[7, "compromised terminal"] == pytest.approx(1 / 3)
    assert table.loc[11, "compromised terminal"] == 0.0
    assert "compromised customer" not in table.columns


def test_eda_rejects_a_missing_input(tmp_path: Path) -> None:
    result = runner.invoke(app, ["eda", "-i", str(tmp_path / "nope"), "-o", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert "does not exist" in result.output
