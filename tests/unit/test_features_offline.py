"""The offline build: bucketed Parquet build == one in-memory query, sources, contract, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vigil.config import FeaturesConfig, Settings
from vigil.data.io import write_partitioned
from vigil.data.simulate import simulate_transactions
from vigil.features import definitions as fd
from vigil.features.offline import (
    build_feature_table,
    compute_features_frame,
    plan_buckets,
)

KEYS = ["transaction_id", "tx_datetime", "customer_id", "terminal_id"]


@pytest.fixture
def simulated(small_settings: Settings) -> pd.DataFrame:
    return simulate_transactions(small_settings.data.model_copy(update={"n_days": 20}))


def test_bucketed_build_equals_single_query(
    small_settings: Settings, simulated: pd.DataFrame, tmp_path: Path
) -> None:
    config = small_settings.features
    raw = tmp_path / "raw"
    write_partitioned(simulated, raw)
    summary = build_feature_table(
        config, raw, tmp_path / "f.parquet", progress=False, rows_per_bucket=len(simulated) // 4
    )
    built = pd.read_parquet(tmp_path / "f.parquet")
    expected = compute_features_frame(config, simulated)
    assert summary.buckets == 5
    assert summary.rows == len(simulated) == len(built)
    assert built.columns.tolist() == [*KEYS, "tx_fraud", "tx_fraud_scenario", *summary.columns]
    assert summary.columns == fd.feature_names(config)
    pd.testing.assert_frame_equal(built[KEYS], expected[KEYS])
    np.testing.assert_allclose(
        built[summary.columns].to_numpy(), expected[summary.columns].to_numpy(), rtol=1e-12
    )


def test_single_file_with_handbook_column_names(simulated: pd.DataFrame, tmp_path: Path) -> None:
    config = FeaturesConfig(extended=False)
    source = tmp_path / "handbook.parquet"
    simulated.rename(columns=str.upper).to_parquet(source)
    summary = build_feature_table(config, source, tmp_path / "f.parquet", progress=False)
    built = pd.read_parquet(tmp_path / "f.parquet")
    assert summary.buckets == 1
    assert built.columns[:4].tolist() == KEYS
    assert built[fd.feature_names(config)].dtypes.eq("float64").all()
    keys = built[["tx_datetime", "transaction_id"]]
    assert keys.equals(keys.sort_values(["tx_datetime", "transaction_id"]))


def test_frame_without_labels_has_zero_risk(simulated: pd.DataFrame) -> None:
    config = FeaturesConfig()
    got = compute_features_frame(config, simulated.drop(columns=["tx_fraud", "tx_fraud_scenario"]))
    assert "tx_fraud" not in got.columns
    risks = [fd.terminal_risk(n) for n in config.windows_days] + [fd.CUSTOMER_RISK_LONGEST]
    assert (got[risks] == 0).all().all()
    assert got[fd.terminal_nb_tx(7)].sum() > 0


def test_plan_buckets_follows_memory_limit() -> None:
    assert plan_buckets(1_000, FeaturesConfig(), None) == 1
    assert plan_buckets(50_000_000, FeaturesConfig(duckdb_memory_limit="2GB"), None) == 10
    assert plan_buckets(10, FeaturesConfig(), rows_per_bucket=3) == 4


def test_clear_errors(simulated: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lacks required columns"):
        compute_features_frame(FeaturesConfig(), simulated.drop(columns=["terminal_id"]))
    with pytest.raises(ValueError, match="label_delay_days must be >= 1"):
        compute_features_frame(FeaturesConfig(label_delay_days=0), simulated)
    simulated.head(0).to_parquet(tmp_path / "empty.parquet")
    with pytest.raises(ValueError, match="holds no transactions"):
        build_feature_table(FeaturesConfig(), tmp_path / "empty.parquet", tmp_path / "f.parquet")
    with pytest.raises(FileNotFoundError, match="no Parquet data"):
        build_feature_table(FeaturesConfig(), tmp_path / "missing", tmp_path / "f.parquet")
