"""Readers and writers: every supported layout maps onto Vigil's schema; bad input is named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.config import DataConfig
from vigil.data import schema
from vigil.data.io import DataFormatError, read_csv, read_transactions, to_schema, write_partitioned
from vigil.data.simulate import simulate_transactions
from vigil.serving.errors import BadUpload
from vigil.serving.uploads import csv_rows

HANDBOOK_NAMES = {name: name.upper() for name in schema.DTYPES}
# One row of every schema column, in schema.DTYPES's order, then an extra column's cell.
ROW = "1,2018-04-01 00:00:31,5,9,20.5,0,0,x\n"


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return simulate_transactions(DataConfig(n_customers=100, n_terminals=300, n_days=5, seed=2))


def as_handbook(frame: pd.DataFrame) -> pd.DataFrame:
    """The handbook's layout: upper-case names, TX_TIME_* columns, object-typed integer ids."""
    out = frame.rename(columns=HANDBOOK_NAMES)
    seconds = (out["TX_DATETIME"] - pd.Timestamp("2018-04-01")) // pd.Timedelta(seconds=1)
    out["TX_TIME_SECONDS"] = seconds.astype(object)
    out["TX_TIME_DAYS"] = (seconds // 86_400).astype(object)
    out["CUSTOMER_ID"] = out["CUSTOMER_ID"].astype(object)
    out["TX_FRAUD"] = out["TX_FRAUD"].astype("int64")
    return out


def test_csv_round_trip(tmp_path: Path, frame: pd.DataFrame) -> None:
    path = tmp_path / "tx.csv"
    frame.to_csv(path, index=False)
    pd.testing.assert_frame_equal(read_transactions(path), frame)


def test_gzipped_csv_round_trip(tmp_path: Path, frame: pd.DataFrame) -> None:
    path = tmp_path / "tx.csv.gz"
    frame.to_csv(path, index=False, compression="gzip")
    pd.testing.assert_frame_equal(read_transactions(path), frame)


def test_parquet_file_round_trip_keeps_microsecond_timestamps(
    tmp_path: Path, frame: pd.DataFrame
) -> None:
    path = tmp_path / "tx.parquet"
    frame.to_parquet(path, index=False)
    read = read_transactions(path)
    pd.testing.assert_frame_equal(read, frame)
    assert str(read[schema.TX_DATETIME].dtype) == "datetime64[us]"


def test_partitioned_dataset_round_trip(tmp_path: Path, frame: pd.DataFrame) -> None:
    written = write_partitioned(frame, tmp_path / "raw")
    names = [p.relative_to(tmp_path / "raw").as_posix() for p in written]
    assert names == [f"tx_date=2018-04-0{d}/part-0.parquet" for d in range(1, 6)]
    pd.testing.assert_frame_equal(read_transactions(tmp_path / "raw"), frame)


def test_a_second_part_is_read_alongside_the_first(tmp_path: Path, frame: pd.DataFrame) -> None:
    first_day = frame[frame[schema.TX_DATETIME] < pd.Timestamp("2018-04-02")]
    write_partitioned(first_day.iloc[:10], tmp_path)
    write_partitioned(first_day.iloc[10:], tmp_path, part="part-1")
    pd.testing.assert_frame_equal(read_transactions(tmp_path), first_day.reset_index(drop=True))


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_handbook_column_names_are_mapped(tmp_path: Path, frame: pd.DataFrame, suffix: str) -> None:
    handbook = as_handbook(frame)
    path = tmp_path / f"tx.{suffix}"
    if suffix == "csv":
        handbook.to_csv(path, index=False)
    else:
        handbook.assign(CUSTOMER_ID=handbook["CUSTOMER_ID"].astype("int64")).to_parquet(path)
    pd.testing.assert_frame_equal(read_transactions(path), frame)


def test_daily_pickles_with_object_ids_are_mapped(tmp_path: Path, frame: pd.DataFrame) -> None:
    handbook = as_handbook(frame)
    for day, rows in handbook.groupby(handbook["TX_DATETIME"].dt.date):
        rows.astype({"TX_DATETIME": "datetime64[ns]"}).to_pickle(tmp_path / f"{day}.pkl")
    read = read_transactions(tmp_path)
    pd.testing.assert_frame_equal(read, frame)


@pytest.mark.handbook
def test_published_handbook_pickles_match_the_published_parquet(handbook_dir: Path) -> None:
    daily = read_transactions(handbook_dir / "daily_pkl")
    assert list(daily.columns) == list(schema.DTYPES)
    assert {c: str(t) for c, t in daily.dtypes.items()} == schema.DTYPES
    assert daily[schema.TX_DATETIME].dt.date.astype(str).unique().tolist() == [
        "2018-04-01",
        "2018-04-02",
        "2018-04-03",
    ]
    # Published order: by time; ids were given by an unstable sort, so ties may swap.
    assert daily[schema.TX_DATETIME].is_monotonic_increasing
    np.testing.assert_array_equal(np.sort(daily[schema.TRANSACTION_ID]), np.arange(len(daily)))
    published = read_transactions(handbook_dir / "transactions_2018-04-01_2018-08-14.parquet")
    assert len(published) == 1_303_778
    pd.testing.assert_frame_equal(published.iloc[: len(daily)], daily)


def test_unknown_format_is_named(tmp_path: Path) -> None:
    path = tmp_path / "tx.xlsx"
    path.write_text("x")
    with pytest.raises(DataFormatError, match=r"unknown transaction format '\.xlsx'"):
        read_transactions(path)


def test_missing_path_and_empty_directory_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="does not exist"):
        read_transactions(tmp_path / "nope.csv")
    with pytest.raises(DataFormatError, match=r"no \*\.parquet files"):
        read_transactions(tmp_path)


def test_missing_columns_are_named(tmp_path: Path, frame: pd.DataFrame) -> None:
    path = tmp_path / "tx.csv"
    frame.drop(columns=[schema.TERMINAL_ID, schema.TX_AMOUNT]).to_csv(path, index=False)
    with pytest.raises(DataFormatError, match=r"missing required column\(s\) \['terminal_id', "):
        read_transactions(path)


@pytest.mark.parametrize("repeat", ["tx_amount", "TX_AMOUNT"])
def test_a_column_named_twice_is_refused(tmp_path: Path, frame: pd.DataFrame, repeat: str) -> None:
    path = tmp_path / "twice.csv"
    frame.head(3).assign(extra=1.0).rename(columns={"extra": repeat}).to_csv(path, index=False)
    with pytest.raises(DataFormatError, match="tx_amount"):
        read_transactions(path)


@st.composite
def spelled(draw: st.DrawFn, name: str) -> str:
    """``name`` in any case, spaces or tabs around it."""
    cased = "".join(draw(st.sampled_from([c.lower(), c.upper()])) for c in name)
    padding = st.text(alphabet=" \t", max_size=2)
    return draw(padding) + cased + draw(padding)


@given(data=st.data())
def test_both_csv_readers_read_any_spelling_of_a_column_as_that_column(data: st.DataObject) -> None:
    """The API's CSV bodies (csv_rows) and the file readers and PUT /add_data (read_csv,
    to_schema) mean the same columns by one header: "Tx_Amount" was an extra column beside
    tx_amount for the second."""
    header = [data.draw(spelled(name)) for name in schema.DTYPES] + [" Note "]
    body = (",".join(header) + "\n" + ROW).encode()
    (row,) = csv_rows(body)
    frame = to_schema(read_csv(body))
    assert set(row) == set(frame.columns) == {*schema.DTYPES, "Note"}
    assert row[schema.TX_AMOUNT] == frame[schema.TX_AMOUNT].iloc[0] == 20.5


@given(data=st.data())
def test_both_csv_readers_refuse_a_column_named_twice_in_any_spelling(
    data: st.DataObject,
) -> None:
    column = data.draw(st.sampled_from(list(schema.DTYPES)))
    header = [*schema.DTYPES, "extra"]
    header[-1] = data.draw(spelled(column))
    body = (",".join(header) + "\n" + ROW).encode()
    with pytest.raises(BadUpload, match=column):
        csv_rows(body)
    with pytest.raises(DataFormatError, match=column):
        to_schema(read_csv(body))


def test_unreadable_values_name_the_column_and_an_example(
    tmp_path: Path, frame: pd.DataFrame
) -> None:
    path = tmp_path / "tx.csv"
    frame.astype({schema.TX_DATETIME: str}).assign(
        tx_datetime=lambda f: f[schema.TX_DATETIME].where(f.index != 3, "yesterday")
    ).to_csv(path, index=False)
    with pytest.raises(DataFormatError, match=r"column 'tx_datetime': 1 value.*'yesterday'"):
        read_transactions(path)
