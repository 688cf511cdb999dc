"""PUT /add_data's domain: whole-batch validation, nothing appended on error, duplicates."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from vigil.config import DataConfig
from vigil.data.io import read_transactions
from vigil.data.simulate import generate
from vigil.data.training_data import RejectedData, TrainingData, parse_csv


@pytest.fixture
def raw_dir(tmp_path: Path) -> Path:
    """A tiny simulated training set (50 customers, 10 days)."""
    out = tmp_path / "raw"
    generate(DataConfig(n_customers=50, n_terminals=100, n_days=10), out, progress=False)
    return out


def snapshot(raw_dir: Path) -> dict[str, bytes]:
    """Every file under the dataset with its bytes: proves nothing changed."""
    return {str(p): p.read_bytes() for p in sorted(raw_dir.rglob("*")) if p.is_file()}


def upload(frame: pd.DataFrame) -> pd.DataFrame:
    """Round-trip through CSV bytes, as the API receives it."""
    return parse_csv(frame.to_csv(index=False).encode())


def new_rows(existing: pd.DataFrame, n: int, offset: int = 1_000_000) -> pd.DataFrame:
    """``n`` labelled rows with unseen ids (uploads carry no fraud scenario)."""
    rows = existing.tail(n).drop(columns=["tx_fraud_scenario"]).copy()
    rows["transaction_id"] += offset
    return rows


def test_invalid_batch_is_rejected_whole_and_nothing_is_written(raw_dir: Path) -> None:
    existing = read_transactions(raw_dir)
    batch = new_rows(existing, 6)
    batch.iloc[2, batch.columns.get_loc("tx_amount")] = -5.0  # one bad row among good ones
    batch.iloc[4, batch.columns.get_loc("tx_fraud")] = 3
    before = snapshot(raw_dir)
    with pytest.raises(RejectedData) as rejected:
        TrainingData(raw_dir).append(upload(batch))
    message = str(rejected.value)
    assert "tx_amount" in message
    assert "tx_fraud" in message
    assert snapshot(raw_dir) == before


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\x00\xff\xfe binary", "CSV"),
        (b"transaction_id,tx_amount\n1,2.0\n", "missing required column"),
        (b"", "CSV"),
    ],
)
def test_unreadable_or_incomplete_files_are_rejected(
    raw_dir: Path, payload: bytes, reason: str
) -> None:
    before = snapshot(raw_dir)
    with pytest.raises(RejectedData, match=reason):
        TrainingData(raw_dir).append(parse_csv(payload))
    assert snapshot(raw_dir) == before


def test_labels_are_required(raw_dir: Path) -> None:
    batch = new_rows(read_transactions(raw_dir), 3).drop(columns=["tx_fraud"])
    with pytest.raises(RejectedData, match="tx_fraud"):
        TrainingData(raw_dir).append(upload(batch))


def test_duplicates_are_reported_not_doubled(raw_dir: Path) -> None:
    existing = read_transactions(raw_dir)
    fresh = new_rows(existing, 3)
    known = existing.head(2).drop(columns=["tx_fraud_scenario"])
    batch = pd.concat([fresh, known, fresh.head(1)], ignore_index=True)
    data = TrainingData(raw_dir)

    result = data.append(upload(batch))

    assert (result.received, result.appended, result.duplicates) == (6, 3, 3)
    expected_ids = sorted([*known["transaction_id"], fresh["transaction_id"].iloc[0]])
    assert result.duplicate_ids == expected_ids
    after = read_transactions(raw_dir)
    assert len(after) == len(existing) + 3
    assert after["transaction_id"].is_unique
    again = data.append(upload(batch))
    assert (again.appended, again.duplicates) == (0, 6)
    assert len(read_transactions(raw_dir)) == len(existing) + 3


def test_appended_rows_read_back_as_one_dataset(raw_dir: Path) -> None:
    import duckdb

    existing = read_transactions(raw_dir)
    fresh = new_rows(existing, 4)
    TrainingData(raw_dir).append(upload(fresh))
    rows = duckdb.sql(
        f"SELECT transaction_id, tx_fraud, tx_fraud_scenario FROM "
        f"read_parquet('{raw_dir}/**/*.parquet', hive_partitioning = true) "
        f"WHERE transaction_id >= 1000000 ORDER BY 1"
    ).fetchall()
    assert [r[0] for r in rows] == sorted(fresh["transaction_id"])
    assert [r[1] for r in rows] == list(fresh.sort_values("transaction_id")["tx_fraud"])
    assert {r[2] for r in rows} == {0}
