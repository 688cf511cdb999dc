"""Smoke tests of ``vigil generate`` and ``vigil validate`` (exit codes, outputs, files)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from vigil.cli import app
from vigil.data import schema
from vigil.data.io import read_transactions

runner = CliRunner()
WORLD = ["--set", "data.n_customers=80", "--set", "data.n_terminals=200", "--set", "data.n_days=4"]


def generate(out: Path, *extra: str) -> tuple[int, str]:
    result = runner.invoke(app, ["generate", *WORLD, "--out", str(out), "--no-progress", *extra])
    return result.exit_code, result.output


def test_generate_writes_day_partitions_and_prints_the_summary(tmp_path: Path) -> None:
    code, output = generate(tmp_path / "raw", "--csv")
    assert code == 0, output
    frame = read_transactions(tmp_path / "raw")
    assert f"wrote {len(frame):,} transactions over 4 days" in output
    assert len(list((tmp_path / "raw").glob("tx_date=*/part-0.parquet"))) == 4
    assert (tmp_path / "raw" / "transactions.csv").exists()


def test_generate_defaults_to_data_raw_dir_and_refuses_to_overwrite(tmp_path: Path) -> None:
    raw = tmp_path / "configured"
    args = ["generate", *WORLD, "--set", f"data.raw_dir={raw}", "--no-progress"]
    assert runner.invoke(app, args).exit_code == 0
    again = runner.invoke(app, args)
    assert again.exit_code == 1
    assert "--overwrite" in again.output
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0


def test_validate_accepts_generated_data_and_saves_the_report(tmp_path: Path) -> None:
    generate(tmp_path / "raw")
    report = tmp_path / "quality.json"
    result = runner.invoke(
        app, ["validate", str(tmp_path / "raw"), "--report", str(report), "--require-labels"]
    )
    assert result.exit_code == 0, result.output
    saved = json.loads(report.read_text())
    assert f"valid: {saved['rows']:,} transactions" in result.output
    assert saved["duplicate_ids"] == 0
    assert [d["day"] for d in saved["daily"]] == [f"2018-04-0{d}" for d in range(1, 5)]


def test_validate_rejects_a_contract_violation_with_exit_code_1(tmp_path: Path) -> None:
    generate(tmp_path / "raw")
    frame = read_transactions(tmp_path / "raw")
    frame.loc[5, schema.TX_AMOUNT] = -3.0
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    result = runner.invoke(app, ["validate", str(path), "--report", str(tmp_path / "q.json")])
    assert result.exit_code == 1
    assert "column 'tx_amount', check 'greater_than_or_equal_to(0)'" in result.output
    assert "row 5" in result.output
    assert json.loads((tmp_path / "q.json").read_text())["rows"] == len(frame)


def test_validate_names_an_unreadable_input(tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    pd.DataFrame({"transaction_id": [1]}).to_csv(path, index=False)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert "missing required column(s)" in result.output
