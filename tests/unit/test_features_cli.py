"""``vigil features``: smoke test on partitioned Parquet, and a clear error for a bad input."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from vigil.cli import app
from vigil.config import Settings
from vigil.data.io import write_partitioned
from vigil.data.simulate import simulate_transactions
from vigil.features.definitions import feature_names


def test_features_command_writes_the_table(small_settings: Settings, tmp_path: Path) -> None:
    frame = simulate_transactions(small_settings.data.model_copy(update={"n_days": 10}))
    write_partitioned(frame, tmp_path / "raw")
    output = tmp_path / "out" / "features.parquet"
    overrides = ["--set", f"data.raw_dir={tmp_path / 'raw'}", "--set", "features.extended=false"]
    overrides += ["--set", "features.extra=[]"]
    result = CliRunner().invoke(app, ["features", *overrides, "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert f"features: {len(frame):,} rows, 15 features" in result.output
    table = pd.read_parquet(output)
    assert table.columns[-15:].tolist() == feature_names(small_settings.features)[:15]
    assert len(table) == len(frame)


def test_features_command_rejects_missing_input(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["features", "--input", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "does not exist" in result.output
