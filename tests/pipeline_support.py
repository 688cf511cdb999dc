"""A small drifting world for the pipeline tests: settings, raw partitions, model, database."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd

from onnx_factory import logistic_model, make_metadata, save
from vigil.config import Settings, build_settings
from vigil.data.io import write_partitioned
from vigil.data.simulate import simulate_transactions
from vigil.features.definitions import feature_names
from vigil.storage import upgrade_database

N_DAYS = 21
DRIFT_DAY = 14
RUN_DAY = date(2018, 4, 21)  # day 20: reference days 7-13, current days 14-20
DRIFT_COLUMNS = ("tx_amount", "tx_during_night")
SCORING_KEYS = [dg.AssetKey(n) for n in ("raw_transactions", "feature_mart", "batch_scores")]


def pipeline_settings(
    tmp_path: Path, drift_columns: tuple[str, ...] = DRIFT_COLUMNS, n_days: int = N_DAYS
) -> Settings:
    """A small world whose amounts double from day 14, drift measured on ``drift_columns``.

    Evidently renders a report section per column (about a second each on this machine), so
    the fast tests compare two columns; ``()`` compares every feature.
    """
    return build_settings(
        {
            "data": {
                "n_customers": 200,
                "n_terminals": 400,
                "n_days": n_days,
                "raw_dir": str(tmp_path / "raw"),
                "drift": {"scenario": "amount_inflation", "start_day": DRIFT_DAY, "strength": 2.0},
            },
            "inference": {"model_path": str(tmp_path / "models" / "model.onnx")},
            "storage": {"database_url": f"sqlite:///{tmp_path / 'vigil.db'}"},
            "monitoring": {
                "marts_dir": str(tmp_path / "marts"),
                "drift_columns": list(drift_columns),
            },
        }
    )


def make_world(settings: Settings) -> pd.DataFrame:
    """Raw partitions of the world, a serving model (score rises with the amount), a database."""
    transactions = simulate_transactions(settings.data)
    write_partitioned(transactions, settings.data.raw_dir)
    names = feature_names(settings.features)
    weights = [0.01 if name == "tx_amount" else 0.0 for name in names]
    save(logistic_model(weights, -2.0, make_metadata(names)), settings.inference.model_path)
    upgrade_database(settings.storage.database_url)
    return transactions
