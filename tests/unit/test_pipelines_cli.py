"""``vigil pipelines``: smoke tests of the entry point."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from pipeline_support import RUN_DAY, make_world, pipeline_settings
from vigil.cli import app
from vigil.config import settings_to_dict
from vigil.monitoring import marts

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


def test_dev_prints_the_dagster_command_on_the_stacks_dagster_port() -> None:
    """The printed command serves Dagster's UI where the compose stack does (3001), not on
    dagster dev's default 3000, the stack's Grafana."""
    result = runner.invoke(app, ["pipelines", "dev"])
    assert result.exit_code == 0
    assert "dagster dev -m vigil.pipelines.definitions -p 3001" in result.output
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    assert "127.0.0.1:3001:3001" in compose["dagster-webserver"]["ports"]
    assert any(port.endswith(":3000") for port in compose["grafana"]["ports"])


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


def test_the_deployed_webserver_command_serves(tmp_path: Path) -> None:
    """docker-compose's (and the k8s manifest's) dagster-webserver command, run natively."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    command = compose["services"]["dagster-webserver"]["command"][-1].replace("$$", "$")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = command.replace("-h 0.0.0.0 -p 3001", f"-h 127.0.0.1 -p {port}")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    log = tmp_path / "webserver.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            ["sh", "-c", command], env=env, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        info = None
        deadline = time.monotonic() + 90
        while info is None and time.monotonic() < deadline and server.poll() is None:
            try:
                info = httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).json()
            except httpx.TransportError:
                time.sleep(0.5)
        assert info is not None, log.read_text()[-2000:]
        assert info["dagster_version"]
        assert (tmp_path / "dagster").is_dir()  # the command creates DAGSTER_HOME first
    finally:
        server.terminate()
        server.wait(timeout=30)
