"""Data contracts reject bad batches with messages naming column, check and rows; quality report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from vigil.data import schema
from vigil.data.contracts import DataContractError, validate_transactions
from vigil.data.io import write_partitioned
from vigil.data.quality import quality_report


def transactions() -> pd.DataFrame:
    """Four valid labelled transactions over two days."""
    return pd.DataFrame(
        {
            schema.TRANSACTION_ID: [10, 11, 12, 13],
            schema.TX_DATETIME: pd.to_datetime(
                ["2018-04-01 08:00", "2018-04-01 09:30", "2018-04-02 10:00", "2018-04-02 23:59"]
            ),
            schema.CUSTOMER_ID: [1, 2, 1, 3],
            schema.TERMINAL_ID: [7, 8, 9, 7],
            schema.TX_AMOUNT: [12.5, 300.0, 0.0, 45.1],
            schema.TX_FRAUD: [0, 1, 0, 0],
        }
    )


def test_valid_batch_passes_with_schema_dtypes_and_extra_columns() -> None:
    frame = transactions().assign(channel=["pos", "web", "pos", "pos"])
    frame[schema.CUSTOMER_ID] = frame[schema.CUSTOMER_ID].astype(object)  # as in the pickles
    valid = validate_transactions(frame, require_labels=True)
    assert str(valid[schema.TX_DATETIME].dtype) == "datetime64[us]"
    assert str(valid[schema.CUSTOMER_ID].dtype) == "int64"
    assert str(valid[schema.TX_FRAUD].dtype) == "int8"
    assert valid["channel"].tolist() == ["pos", "web", "pos", "pos"]


def set_value(column: str, value: object, row: int = 2) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        if column == schema.TX_DATETIME:
            frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
        return frame

    return mutate


@pytest.mark.parametrize(
    ("mutate", "column", "check", "example"),
    [
        (set_value(schema.TX_AMOUNT, -5.0), "tx_amount", "greater_than_or_equal_to(0)", "-5.0"),
        (set_value(schema.TRANSACTION_ID, 10), "transaction_id", "field_uniqueness", "row 0"),
        (set_value(schema.TX_FRAUD, 2), "tx_fraud", "isin", "row 2 (transaction_id=12): 2"),
        (set_value(schema.TX_DATETIME, "not a date"), "tx_datetime", "coerce_dtype", "not a date"),
        (set_value(schema.TX_DATETIME, pd.NaT), "tx_datetime", "not_nullable", "row 2"),
        (set_value(schema.CUSTOMER_ID, -1), "customer_id", "greater_than_or_equal_to(0)", "-1"),
    ],
)
def test_violation_names_column_check_and_rows(
    mutate: Callable[[pd.DataFrame], pd.DataFrame], column: str, check: str, example: str
) -> None:
    with pytest.raises(DataContractError) as caught:
        validate_transactions(mutate(transactions()), require_labels=True)
    message = str(caught.value)
    line = next(line for line in message.splitlines() if f"column {column!r}" in line)
    assert check in line
    assert example in line


def test_all_failures_are_reported_at_once() -> None:
    frame = set_value(schema.TX_AMOUNT, -1.0, row=0)(set_value(schema.TX_FRAUD, 5)(transactions()))
    with pytest.raises(DataContractError) as caught:
        validate_transactions(frame, require_labels=True)
    assert "'tx_amount'" in str(caught.value) and "'tx_fraud'" in str(caught.value)
    assert set(caught.value.failures["column"]) == {"tx_amount", "tx_fraud"}


def test_labels_are_required_only_on_request() -> None:
    unlabelled = transactions().drop(columns=[schema.TX_FRAUD])
    assert len(validate_transactions(unlabelled)) == 4
    with pytest.raises(DataContractError, match=r"missing column\(s\) 'tx_fraud'"):
        validate_transactions(unlabelled, require_labels=True)


def test_invalid_batch_is_rejected_before_anything_is_written(tmp_path: Path) -> None:
    frame = set_value(schema.TX_AMOUNT, -5.0, row=3)(transactions())
    with pytest.raises(DataContractError, match="tx_amount"):
        write_partitioned(frame, tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def test_quality_report_counts_by_hand(tmp_path: Path) -> None:
    frame = transactions()
    frame.loc[3, schema.TRANSACTION_ID] = 12  # a duplicate id
    frame.loc[0, schema.TX_AMOUNT] = float("nan")  # a missing amount
    report = quality_report(frame)
    assert report.rows == 4
    assert report.duplicate_ids == 1
    assert report.columns[schema.TX_AMOUNT].missing == 1
    assert report.columns[schema.TX_AMOUNT].max == 300.0
    assert report.columns[schema.TX_AMOUNT].mean == pytest.approx((300.0 + 0.0 + 45.1) / 3)
    assert report.columns[schema.CUSTOMER_ID].distinct == 3
    assert report.fraud_rate == pytest.approx(0.25)
    assert [(d.day, d.transactions, d.frauds) for d in report.daily] == [
        ("2018-04-01", 2, 1),
        ("2018-04-02", 2, 0),
    ]
    assert report.daily[0].fraud_rate == pytest.approx(0.5)
    assert report.first_timestamp == "2018-04-01 08:00:00"
    path = tmp_path / "q.json"
    report.save(path)
    assert type(report).model_validate_json(path.read_text()) == report
