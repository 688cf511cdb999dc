"""The retrain job's strategy (ADR 0023): full, warm start of the champion, or auto.

A small drifting world: the LightGBM champion learnt the six weeks before the drift; the
retrain job runs two weeks after it (the fitting period ends with the two drifted weeks, the
warm start's recent data). On amount inflation ``auto`` keeps the warm start, which the
gate promotes; on a customer shift adapting does not help (bench_drift_adapt: it hurts) and
the gate keeps the champion. ``auto`` chooses between its two runs on their validation AP,
the full training when the warm start is worse.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from mlflow import MlflowClient

from vigil.config import Settings, build_settings
from vigil.data.simulate import simulate_transactions
from vigil.storage import create_db_engine, upgrade_database
from vigil.tracking.model_registry import ModelRegistry
from vigil.training import challenger as challenger_module
from vigil.training.challenger import (
    RETRAIN_STRATEGY,
    PromotionOutcome,
    gate_and_promote,
    train_challenger,
)
from vigil.training.data import load_feature_table
from vigil.training.run import run_training

START = date(2018, 4, 1)
DRIFT_DAY, FIT_DAYS, RECENT_DAYS = 60, 42, 14


def _settings(root: Path, scenario: str, train_start: date, strategy: str) -> Settings:
    return build_settings(
        {
            "data": {
                "n_customers": 1500,
                "n_terminals": 3000,
                "n_days": DRIFT_DAY + RECENT_DAYS + 14,
                "start_date": START.isoformat(),
                "raw_dir": str(root / "raw.parquet"),
                "drift": {"scenario": scenario, "start_day": DRIFT_DAY, "strength": 2.0},
            },
            "model": {"kind": "lightgbm"},
            "train": {
                "train_start": train_start.isoformat(),
                "train_days": FIT_DAYS,
                "history_days": 0,
                "runs_dir": str(root / "runs"),
            },
            "retrain": {"strategy": strategy, "warm_start_days": RECENT_DAYS},
            "tracking": {"mlflow_uri": f"file:{root / 'mlruns'}"},
            "inference": {"model_path": str(root / "serving" / "model.onnx")},
            "storage": {"database_url": f"sqlite:///{root / 'vigil.db'}"},
        }
    )


def _retrain(root: Path, scenario: str, strategy: str) -> tuple[Settings, Path, dict[str, float]]:
    """Champion before the drift, installed; then the retrain job after it."""
    before = _settings(root, scenario, START + timedelta(days=DRIFT_DAY - FIT_DAYS), "full")
    simulate_transactions(before.data).to_parquet(before.data.raw_dir)
    run_training(before, load_feature_table(before), promote=True)
    after_start = START + timedelta(days=DRIFT_DAY + RECENT_DAYS - FIT_DAYS)
    after = _settings(root, scenario, after_start, strategy)
    challenger = train_challenger(after)
    return after, challenger.model, challenger.metrics | {"version": challenger.registry_version}


@pytest.mark.slow  # two drifting worlds, five LightGBM fits: about a minute
def test_auto_keeps_the_warm_start_on_amount_inflation(tmp_path: Path) -> None:
    settings, model, metrics = _retrain(tmp_path, "amount_inflation", "auto")
    summary = json.loads((model.parent / "metrics.json").read_text())
    assert summary["warm_start_from"] is not None and metrics["retrain_warm_start"] == 1.0
    version = ModelRegistry(settings.tracking).get_version(int(metrics["version"]))
    assert version.tags[RETRAIN_STRATEGY] == "warm_start"
    run = MlflowClient(settings.tracking.mlflow_uri).get_run(version.run_id)
    assert run.data.tags[RETRAIN_STRATEGY] == "warm_start"
    outcome = _gate(settings, model)
    assert outcome.promoted, outcome.reason


@pytest.mark.slow
def test_the_gate_rejects_a_warm_start_that_does_not_help_on_customer_shift(tmp_path: Path) -> None:
    settings, model, metrics = _retrain(tmp_path, "customer_shift", "warm_start")
    assert metrics["retrain_warm_start"] == 1.0
    outcome = _gate(settings, model)
    assert not outcome.promoted, outcome.reason


def _run_dir(root: Path, name: str, validation_ap: float) -> Path:
    run_dir = root / name
    run_dir.mkdir()
    summary = {"validation": {"average_precision": validation_ap}, "test": {}}
    (run_dir / "metrics.json").write_text(json.dumps(summary))
    return run_dir


@pytest.mark.parametrize(
    ("warm_ap", "full_ap", "chosen"),
    [(0.70, 0.80, "full"), (0.80, 0.70, "warm_start"), (0.75, 0.75, "warm_start")],
)
def test_auto_keeps_the_run_with_the_better_validation_ap(
    tmp_path: Path, warm_ap: float, full_ap: float, chosen: str
) -> None:
    warm, full = _run_dir(tmp_path, "warm", warm_ap), _run_dir(tmp_path, "full", full_ap)
    expected = {"full": full, "warm_start": warm}[chosen]
    assert challenger_module._choose(warm, full) == (expected, chosen)


@pytest.mark.slow
def test_auto_falls_back_to_the_full_training_when_the_warm_start_is_worse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate_calls: list[Path] = []
    real_gate = challenger_module.run_gate

    def counting_gate(*args: object, **kwargs: object) -> object:
        gate_calls.append(Path(str(args[1])))
        return real_gate(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(challenger_module, "run_gate", counting_gate)
    settings, model, metrics = _retrain(tmp_path, "customer_shift", "auto")
    runs = [json.loads(m.read_text()) for m in settings.train.runs_dir.glob("*/metrics.json")]
    warm = next(r for r in runs if r["warm_start_from"] is not None)
    summary = json.loads((model.parent / "metrics.json").read_text())
    assert summary["warm_start_from"] is None and metrics["retrain_warm_start"] == 0.0
    ap = "average_precision"
    assert warm["validation"][ap] < summary["validation"][ap]
    assert gate_calls == []  # the choice did not look at the gate's window
    version = ModelRegistry(settings.tracking).get_version(int(metrics["version"]))
    assert version.tags[RETRAIN_STRATEGY] == "full"


def _gate(settings: Settings, model: Path) -> PromotionOutcome:
    """The promotion gate of the Dagster retrain job, on a fresh database."""
    upgrade_database(settings.storage.database_url)
    engine = create_db_engine(settings.storage.database_url)
    try:
        return gate_and_promote(settings, model, engine)
    finally:
        engine.dispose()
