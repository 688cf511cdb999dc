"""The offline build: streamed Parquet build == in-memory frame == old SQL engine, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feature_sql_reference import reference_features
from vigil.config import FeaturesConfig, Settings
from vigil.data.io import write_partitioned
from vigil.data.simulate import simulate_transactions
from vigil.features import definitions as fd
from vigil.features import offline
from vigil.features.offline import build_feature_table, compute_features_frame

KEYS = ["transaction_id", "tx_datetime", "customer_id", "terminal_id"]


@pytest.fixture
def simulated(small_settings: Settings) -> pd.DataFrame:
    return simulate_transactions(small_settings.data.model_copy(update={"n_days": 20}))


def bits(frame: pd.DataFrame, names: list[str]) -> np.ndarray:
    return frame[names].to_numpy().view(np.int64)


def test_streamed_build_equals_in_memory_frame_bit_for_bit(
    small_settings: Settings, simulated: pd.DataFrame, tmp_path: Path
) -> None:
    config = small_settings.features
    raw = tmp_path / "raw"
    write_partitioned(simulated, raw)
    summary = build_feature_table(config, raw, tmp_path / "f.parquet", progress=False)
    built = pd.read_parquet(tmp_path / "f.parquet")
    expected = compute_features_frame(config, simulated)
    assert summary.chunks == 20  # one per day partition
    assert summary.rows == len(simulated) == len(built)
    assert built.columns.tolist() == [*KEYS, "tx_fraud", "tx_fraud_scenario", *summary.columns]
    assert expected.columns.tolist() == built.columns.tolist()
    assert summary.columns == fd.feature_names(config)
    pd.testing.assert_frame_equal(built[KEYS], expected[KEYS])
    np.testing.assert_array_equal(bits(built, summary.columns), bits(expected, summary.columns))


SUM_BASED = (
    *(fd.customer_avg_amount(n) for n in (1, 7, 30)),
    fd.AMOUNT_OVER_CUSTOMER_AVG,
    fd.AMOUNT_OVER_PRIOR_MEAN,
)


def test_kernels_equal_the_old_sql_engine(small_settings: Settings) -> None:
    """19 of 24 features bit for bit; window sums are exact here, DuckDB's add in tree order."""
    frame = simulate_transactions(small_settings.data.model_copy(update={"n_days": 45}))
    config = FeaturesConfig()
    got, want = compute_features_frame(config, frame), reference_features(config, frame)
    assert got[KEYS].equals(want[KEYS])
    names = fd.feature_names(config)
    assert len(names) == 24
    for name in names:
        if name in SUM_BASED:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-14, err_msg=name)
        else:
            np.testing.assert_array_equal(got[name].to_numpy(), want[name].to_numpy(), name)


def test_values_do_not_depend_on_the_split(simulated: pd.DataFrame) -> None:
    """A time slice with the features' lookback before it gives the full run's values exactly."""
    config = FeaturesConfig()
    full = compute_features_frame(config, simulated).set_index("transaction_id")
    start = simulated["tx_datetime"].min() + pd.Timedelta(days=12)
    margin = start - pd.Timedelta(days=fd.feature_lookback_days(config))
    part = simulated[simulated["tx_datetime"] >= margin]
    sliced = compute_features_frame(config, part).set_index("transaction_id")
    sliced = sliced[sliced["tx_datetime"] >= start]
    names = fd.feature_names(config)
    np.testing.assert_array_equal(
        bits(sliced, names), bits(full.loc[sliced.index], names), "split changed a value"
    )


@pytest.mark.parametrize("max_chunk_rows", [10**9, 1_000], ids=["one-chunk", "by-day"])
def test_time_overlapping_files(
    simulated: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_chunk_rows: int
) -> None:
    """Files whose times overlap form one chunk, re-partitioned by day when it is too large."""
    monkeypatch.setattr(offline, "MAX_CHUNK_ROWS", max_chunk_rows)
    config = FeaturesConfig()
    raw = tmp_path / "shuffled"
    raw.mkdir()
    shuffled = simulated.sample(frac=1.0, random_state=0)
    third = len(shuffled) // 3 + 1
    for i in range(3):
        shuffled.iloc[i * third : (i + 1) * third].to_parquet(raw / f"{i}.parquet", index=False)
    summary = build_feature_table(config, raw, tmp_path / "f.parquet", progress=False)
    built = pd.read_parquet(tmp_path / "f.parquet")
    expected = compute_features_frame(config, simulated)
    assert summary.chunks == (1 if max_chunk_rows > len(simulated) else 20)
    assert built[KEYS].equals(expected[KEYS])
    names = fd.feature_names(config)
    np.testing.assert_array_equal(bits(built, names), bits(expected, names))


def test_single_file_with_handbook_column_names(simulated: pd.DataFrame, tmp_path: Path) -> None:
    config = FeaturesConfig(extended=False)
    source = tmp_path / "handbook.parquet"
    simulated.rename(columns=str.upper).to_parquet(source)
    summary = build_feature_table(config, source, tmp_path / "f.parquet", progress=False)
    built = pd.read_parquet(tmp_path / "f.parquet")
    assert summary.chunks == 1
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
