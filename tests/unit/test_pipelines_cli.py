"""``vigil pipelines``: smoke tests of the entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipeline_support import RUN_DAY, make_world, pipeline_settings
from vigil.cli import app
from vigil.config import settings_to_dict
from vigil.monitoring import marts

runner = CliRunner()


def test_dev_prints_the_dagster_command() -> None:
    result = runner.invoke(app, ["pipelines", "dev"])
    assert result.exit_code == 0
    assert "dagster dev -m vigil.pipelines.definitions" in result.output


def test_daily_without_a_date_is_a_usage_error() -> None:
    result = runner.invoke(app, ["pipelines", "run", "daily"])
    assert result.exit_code == 2
    assert "--date" in result.output


@pytest.mark.slow
def test_daily_run_writes_every_mart(tmp_path: Path) -> None:
    settings = pipeline_settings(tmp_path)
    make_world(settings)
    config = tmp_path / "vigil.yaml"
    config.write_text(yaml.safe_dump(settings_to_dict(settings)))
    result = runner.invoke(
        app, ["pipelines", "run", "daily", "--date", RUN_DAY.isoformat(), "-c", str(config)]
    )
    assert result.exit_code == 0, result.output
    assert "feature_drift: dataset_drift=True" in result.output
    marts_dir = settings.monitoring.marts_dir
    performance = json.loads(marts.latest_path(marts_dir, "performance").read_text())
    assert performance["window_end"] == RUN_DAY.isoformat()
    assert marts.day_partition(marts_dir, "scores", RUN_DAY).is_file()
