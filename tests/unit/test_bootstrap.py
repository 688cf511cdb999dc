"""``vigil bootstrap``, the command of docker compose's one-shot ``init`` service, run natively.

With no model it simulates data (only if the raw folder holds none), trains and promotes a
model to ``inference.model_path``; run again it does nothing. A small world keeps it fast;
the command and its settings path are the compose service's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from vigil.cli import app
from vigil.inference.scorer import OnnxScorer

pytestmark = pytest.mark.slow  # a real simulation, training and export (about a minute)

ROOT = Path(__file__).resolve().parents[2]


def test_init_service_command_bootstraps_a_model_once(tmp_path: Path) -> None:
    init = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["init"]
    command = [*init["entrypoint"], *init["command"]]
    assert command == ["vigil", "bootstrap"]
    model = tmp_path / "models" / "current" / "model.onnx"
    world = [
        f"inference.model_path={model}",
        f"data.raw_dir={tmp_path / 'data' / 'raw'}",
        f"train.runs_dir={tmp_path / 'runs'}",
        f"tracking.mlflow_uri=file:{tmp_path / 'mlruns'}",
        "data.n_customers=60",
        "data.n_terminals=120",
        "data.n_days=42",
        "train.train_start=2018-04-20",
        "train.history_days=0",
        "train.epochs=2",
    ]
    overrides = [arg for item in world for arg in ("--set", item)]
    first = CliRunner().invoke(app, [*command[1:], *overrides])
    assert first.exit_code == 0, first.output
    assert "simulated" in first.output and "promoted" in first.output
    assert OnnxScorer.load(model).feature_names  # a loadable serving model
    again = CliRunner().invoke(app, [*command[1:], *overrides])
    assert again.exit_code == 0, again.output
    assert "nothing to do" in again.output
