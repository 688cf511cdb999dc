"""Batch scoring end to end: CSV and Parquet round trips, and bad inputs that write nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from onnx_factory import logistic_model, make_metadata, save
from vigil.cli import app
from vigil.config import Settings, build_settings
from vigil.data.simulate import simulate_transactions
from vigil.features.definitions import feature_names
from vigil.features.offline import compute_features_frame

THRESHOLD = 0.5


@pytest.fixture(scope="module")
def settings() -> Settings:
    return build_settings({"data": {"n_customers": 60, "n_terminals": 120, "n_days": 6}})


@pytest.fixture(scope="module")
def transactions(settings: Settings) -> pd.DataFrame:
    return simulate_transactions(settings.data).drop(columns=["tx_fraud", "tx_fraud_scenario"])


@pytest.fixture(scope="module")
def weights(settings: Settings) -> np.ndarray:
    names = feature_names(settings.features)
    w = np.zeros(len(names))
    w[names.index("tx_amount")] = 0.03
    w[names.index("customer_id_nb_tx_1day_window")] = 0.2
    return w


@pytest.fixture
def model_path(tmp_path: Path, settings: Settings, weights: np.ndarray) -> Path:
    metadata = make_metadata(feature_names(settings.features), threshold=THRESHOLD)
    return save(logistic_model(weights, -3.0, metadata), tmp_path / "model.onnx")


def _expected(settings: Settings, transactions: pd.DataFrame, weights: np.ndarray) -> pd.Series:
    features = compute_features_frame(settings.features, transactions)
    x = features[feature_names(settings.features)].to_numpy(np.float32)
    z = x @ weights.astype(np.float32) - 3.0
    return pd.Series(1 / (1 + np.exp(-z)), index=features["transaction_id"])


def _run(*args: object) -> object:
    return CliRunner().invoke(app, ["predict", *[str(a) for a in args]])


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip_scores_every_transaction_in_input_order(
    tmp_path: Path,
    settings: Settings,
    transactions: pd.DataFrame,
    weights: np.ndarray,
    model_path: Path,
    suffix: str,
) -> None:
    shuffled = transactions.sample(frac=1.0, random_state=1)
    source = _write(shuffled, tmp_path / f"in{suffix}")
    target = tmp_path / "out" / f"scores{suffix}"
    result = _run(
        "--input_path", source, "--output_path", target, "--model", model_path, "--cold-features"
    )
    assert result.exit_code == 0, result.output
    out = pd.read_csv(target) if suffix == ".csv" else pd.read_parquet(target)
    assert list(out.columns) == ["transaction_id", "score", "label"]
    assert out["transaction_id"].tolist() == shuffled["transaction_id"].tolist()
    expected = _expected(settings, transactions, weights).loc[out["transaction_id"]]
    np.testing.assert_allclose(out["score"], expected, atol=1e-6)
    assert (out["label"] == (out["score"] >= THRESHOLD)).all()
    assert 0 < out["label"].sum() < len(out)
    assert list(target.parent.iterdir()) == [target]  # no temp file left behind


def test_gzipped_csv_in_and_out_and_a_parquet_directory_of_features(
    tmp_path: Path,
    settings: Settings,
    transactions: pd.DataFrame,
    weights: np.ndarray,
    model_path: Path,
) -> None:
    source = tmp_path / "in.csv.gz"
    transactions.to_csv(source, index=False, compression="gzip")
    target = tmp_path / "scores.csv.gz"
    result = _run("-i", source, "-o", target, "-m", model_path, "--cold-features")
    assert result.exit_code == 0, result.output
    gz = pd.read_csv(target, compression="gzip")
    expected = _expected(settings, transactions, weights).loc[gz["transaction_id"]]
    np.testing.assert_allclose(gz["score"], expected, atol=1e-6)
    features = compute_features_frame(settings.features, transactions)
    parts = tmp_path / "features"
    parts.mkdir()
    for i in range(3):
        features.iloc[i::3].to_parquet(parts / f"part-{i}.parquet", index=False)
    result = _run(
        "-i", parts, "-o", tmp_path / "dir.csv", "-m", model_path, "--features-precomputed"
    )
    assert result.exit_code == 0, result.output
    assert sorted(pd.read_csv(tmp_path / "dir.csv")["transaction_id"]) == sorted(
        features["transaction_id"]
    )


def test_precomputed_features(
    tmp_path: Path,
    settings: Settings,
    transactions: pd.DataFrame,
    weights: np.ndarray,
    model_path: Path,
) -> None:
    features = compute_features_frame(settings.features, transactions)
    source = _write(features, tmp_path / "features.parquet")
    target = tmp_path / "scores.csv"
    result = _run("-i", source, "-o", target, "-m", model_path, "--features-precomputed")
    assert result.exit_code == 0, result.output
    out = pd.read_csv(target)
    expected = _expected(settings, transactions, weights).loc[out["transaction_id"]]
    np.testing.assert_allclose(out["score"], expected, atol=1e-6)


def test_history_gives_the_input_the_features_of_the_full_stream(
    tmp_path: Path, settings: Settings, weights: np.ndarray, model_path: Path
) -> None:
    labelled = simulate_transactions(settings.data)
    cut = labelled["tx_datetime"].min() + pd.Timedelta(days=4)
    history, recent = (
        labelled[labelled["tx_datetime"] < cut],
        labelled[labelled["tx_datetime"] >= cut],
    )
    source = _write(recent.drop(columns=["tx_fraud", "tx_fraud_scenario"]), tmp_path / "in.csv")
    target = tmp_path / "scores.csv"
    result = _run(
        "-i",
        source,
        "-o",
        target,
        "-m",
        model_path,
        "--history",
        _write(history, tmp_path / "h.parquet"),
    )
    assert result.exit_code == 0, result.output
    out = pd.read_csv(target)
    assert out["transaction_id"].tolist() == recent["transaction_id"].tolist()
    # Input labels are unknown at scoring time, so the reference stream has them masked too.
    masked = pd.concat([history, recent.assign(tx_fraud=0)])
    expected = _expected(settings, masked, weights).loc[out["transaction_id"]]
    np.testing.assert_allclose(out["score"], expected, atol=1e-6)


def test_input_without_history_is_refused_unless_cold_features_are_accepted(
    tmp_path: Path, transactions: pd.DataFrame, model_path: Path
) -> None:
    source = _write(transactions, tmp_path / "in.csv")
    target = tmp_path / "out" / "scores.csv"
    refused = _run("-i", source, "-o", target, "-m", model_path)
    assert refused.exit_code == 1
    assert "--history" in refused.output and "--cold-features" in refused.output
    assert "nothing was written" in refused.output
    assert not target.parent.exists()
    accepted = _run("-i", source, "-o", target, "-m", model_path, "--cold-features")
    assert accepted.exit_code == 0, accepted.output
    assert len(pd.read_csv(target)) == len(transactions)


def test_labelled_input_longer_than_the_lookback_is_its_own_history(
    tmp_path: Path, weights: np.ndarray, model_path: Path
) -> None:
    long_world = build_settings({"data": {"n_customers": 40, "n_terminals": 80, "n_days": 40}})
    labelled = simulate_transactions(long_world.data).drop(columns=["tx_fraud_scenario"])
    source = _write(labelled, tmp_path / "in.parquet")
    target = tmp_path / "scores.csv"
    result = _run("-i", source, "-o", target, "-m", model_path)
    assert result.exit_code == 0, result.output
    out = pd.read_csv(target)
    expected = _expected(long_world, labelled, weights).loc[out["transaction_id"]]
    np.testing.assert_allclose(out["score"], expected, atol=1e-6)
    short = _write(
        labelled[labelled["tx_datetime"] < labelled["tx_datetime"].min() + pd.Timedelta(days=10)],
        tmp_path / "short.parquet",
    )
    refused = _run("-i", short, "-o", tmp_path / "short.csv", "-m", model_path)
    assert refused.exit_code == 1 and "spans" in refused.output


def _corrupt(frame: pd.DataFrame, path: Path, how: str) -> Path:
    if how == "missing-column":
        return _write(frame.drop(columns=["terminal_id"]), path)
    if how == "bad-type":
        bad = frame.astype({"tx_amount": object})
        bad.loc[3, "tx_amount"] = "twelve"
        return _write(bad, path)
    if how == "duplicate-id":
        return _write(pd.concat([frame, frame.head(1)]), path)
    if how == "garbage":
        path.write_bytes(b"\x00\x01PAR1 not parquet at all" * 10)
        return path
    raise AssertionError(how)


@pytest.mark.parametrize(
    ("how", "suffix", "message"),
    [
        ("missing-column", ".csv", "terminal_id"),
        ("bad-type", ".csv", "tx_amount"),
        ("duplicate-id", ".parquet", "transaction_id"),
        ("garbage", ".parquet", "not readable"),
    ],
)
def test_malformed_input_fails_clearly_and_writes_nothing(
    tmp_path: Path,
    transactions: pd.DataFrame,
    model_path: Path,
    how: str,
    suffix: str,
    message: str,
) -> None:
    source = _corrupt(transactions, tmp_path / f"in{suffix}", how)
    out_dir = tmp_path / "out"
    result = _run("-i", source, "-o", out_dir / "scores.csv", "-m", model_path)
    assert result.exit_code == 1
    assert message in result.output
    assert "nothing was written" in result.output
    assert not out_dir.exists()


def test_missing_feature_columns_are_named(
    tmp_path: Path, settings: Settings, transactions: pd.DataFrame, model_path: Path
) -> None:
    features = compute_features_frame(settings.features, transactions)
    dropped = ["terminal_id_risk_7day_window", "tx_during_night"]
    source = _write(features.drop(columns=dropped), tmp_path / "features.csv")
    target = tmp_path / "scores.csv"
    result = _run("-i", source, "-o", target, "-m", model_path, "--features-precomputed")
    assert result.exit_code == 1
    assert str(["tx_during_night", "terminal_id_risk_7day_window"]) in result.output
    assert not target.exists()


def test_missing_model_or_bad_output_suffix_writes_nothing(
    tmp_path: Path, transactions: pd.DataFrame, model_path: Path
) -> None:
    source = _write(transactions, tmp_path / "in.csv")
    no_model = _run("-i", source, "-o", tmp_path / "a.csv", "-m", tmp_path / "none.onnx")
    bad_suffix = _run("-i", source, "-o", tmp_path / "a.json", "-m", model_path)
    assert no_model.exit_code == 1 and "does not exist" in no_model.output
    assert bad_suffix.exit_code == 1 and ".csv.gz, .parquet or .pq" in bad_suffix.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "model.onnx"]


def test_python_dash_m_entry_point(
    tmp_path: Path, transactions: pd.DataFrame, model_path: Path
) -> None:
    source = _write(transactions.head(50), tmp_path / "in.csv")
    target = tmp_path / "scores.parquet"
    args = [
        "--input_path",
        source,
        "--output_path",
        target,
        "--model",
        model_path,
        "--cold-features",
    ]
    completed = subprocess.run(
        [sys.executable, "-m", "vigil.predict", *map(str, args)],
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr
    assert len(pd.read_parquet(target)) == 50
