"""Multi-seed experiments: the --seeds forms, mean ± std per experiment, one run per seed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from vigil.config import ConfigError
from vigil.data.simulate import simulate_transactions
from vigil.training.experiments import (
    aggregate,
    format_table,
    parse_seeds,
    results_payload,
    run_experiments,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0,1,2,3,4", [0, 1, 2, 3, 4]), ("7", [42, 43, 44, 45, 46, 47, 48]), ("3-5", [3, 4, 5])],
)
def test_seed_forms(text: str, expected: list[int]) -> None:
    assert parse_seeds(text, base_seed=42) == expected


@pytest.mark.parametrize("text", ["", "a,b", "1,1", "5-3", "0"])
def test_bad_seeds_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="--seeds"):
        parse_seeds(text, base_seed=0)


def _run(name: str, auc: float, ap: float, cp: float) -> dict[str, Any]:
    test = {"auc_roc": auc, "average_precision": ap, "card_precision_at_k": cp}
    return {
        "experiment_name": name,
        "model_kind": "mlp",
        "test": test | {"expected_cost_per_transaction": 1.0},
        "dataset": {"path": "raw.parquet", "sha256": "abc"},
    }


def test_table_has_mean_and_population_std_per_experiment() -> None:
    rows = aggregate(
        [_run("a", 0.80, 0.60, 0.30), _run("a", 0.90, 0.70, 0.20), _run("b", 0.5, 0.9, 0.1)]
    )
    assert [r.experiment for r in rows] == ["b", "a"]  # best AP first
    a = rows[1]
    assert a.n_runs == 2
    assert a.means["average_precision"] == pytest.approx(0.65)
    assert a.spreads["average_precision"] == pytest.approx(0.05)  # population std of 0.6, 0.7
    table = format_table(rows)
    assert "| a | mlp | 2 | 0.8500 ± 0.0500 | 0.6500 ± 0.0500 | 0.2500 ± 0.0500 |" in table
    assert "| b | mlp | 1 | 0.5000 | 0.9000 | 0.1000 |" in table


def test_results_json_holds_the_table_and_the_newest_run_of_each_experiment() -> None:
    runs = [_run("a", 0.80, 0.60, 0.30), _run("a", 0.90, 0.70, 0.20), _run("b", 0.5, 0.9, 0.1)]
    payload = json.loads(json.dumps(results_payload(runs)))
    by_name = {e["experiment"]: e for e in payload["experiments"]}
    assert list(by_name) == ["b", "a"]
    assert by_name["a"]["means"]["average_precision"] == pytest.approx(0.65)
    assert by_name["a"]["latest_test"]["auc_roc"] == 0.90
    assert by_name["b"]["dataset"]["sha256"] == "abc"


@pytest.mark.slow  # two full runs with exports (~20 s quiet, ~50 s loaded)
def test_one_run_per_listed_seed(tmp_path: Path) -> None:
    tree = {
        "data": {"n_customers": 150, "n_terminals": 300, "n_days": 30, "start_date": "2018-04-01"},
        "train": {
            "train_start": "2018-04-08", "train_days": 8, "validation_days": 2, "delay_days": 7,
            "test_days": 7, "top_k_cards": 20, "runs_dir": str(tmp_path / "runs"),
        },
        "tracking": {"mlflow_uri": f"file:{tmp_path / 'mlruns'}"},
    }  # fmt: skip
    from vigil.config import build_settings

    raw = tmp_path / "raw.parquet"
    simulate_transactions(build_settings(tree).data).to_parquet(raw)
    base = tmp_path / "vigil.yaml"
    base.write_text(yaml.safe_dump(json.loads(json.dumps(tree))))
    experiment = tmp_path / "logistic.yaml"
    experiment.write_text(yaml.safe_dump({"model": {"kind": "logistic"}}))
    results = run_experiments(base, [experiment], data=raw, seeds="3,4", environ={})
    seeds = [
        yaml.safe_load((tmp_path / "runs" / r["run_id"] / "config.yaml").read_text())["train"][
            "seed"
        ]
        for r in results
    ]
    assert seeds == [3, 4]
    assert [r["experiment_name"] for r in results] == ["logistic", "logistic"]
