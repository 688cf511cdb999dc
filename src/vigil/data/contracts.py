"""Data contracts (pandera): the transaction contract applied to a batch, and the label contract.

The rules are :mod:`vigil.data.transaction`'s; this module states them over frames. A first
pass checks what pandera's coercion would hide (an id of 5.9 truncated to 5, a boolean amount,
a number read as a time), then the columns are coerced and checked against the ranges.

Validation is lazy (every failure collected) and a failure raises :class:`DataContractError`
whose message names the column, the check and example rows, so callers can reject a batch
before anything is written.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import orjson
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from vigil.data import schema
from vigil.data import transaction as tx

logger = logging.getLogger(__name__)

MAX_EXAMPLES = 3
FRAUD_SCENARIOS = (0, 1, 2, 3, 4)


class DataContractError(ValueError):
    """A batch of data broke its contract; ``failures`` holds pandera's failure cases."""

    def __init__(self, message: str, failures: pd.DataFrame) -> None:
        super().__init__(message)
        self.failures = failures


def _id_column(unique: bool = False) -> pa.Column:
    return pa.Column(
        "int64", [pa.Check.ge(tx.ID_MIN), pa.Check.lt(tx.ID_LIMIT)], nullable=False, unique=unique
    )


def _label_column(required: bool) -> pa.Column:
    return pa.Column(
        "int8", pa.Check.isin(list(tx.LABEL_VALUES)), nullable=False, required=required
    )


# pandera's datetime type is nanoseconds; :func:`_validate` casts the result to the schema's
# microseconds (``schema.DTYPES``).
_TIMESTAMP = "datetime64[ns]"
_INTEGER_COLUMNS = (
    schema.TRANSACTION_ID,
    schema.CUSTOMER_ID,
    schema.TERMINAL_ID,
    schema.TX_FRAUD,
    schema.TX_FRAUD_SCENARIO,
)
_KNOWN_COLUMNS = frozenset(
    (*schema.TRANSACTION_COLUMNS, schema.TX_FRAUD, schema.TX_FRAUD_SCENARIO, schema.LABELLED_AT)
)


def _exact(value: object) -> bool:
    try:
        tx.exact_int(value.item() if isinstance(value, np.generic) else value)
    except ValueError:
        return False
    return True


def exact_integers(series: pd.Series) -> pd.Series:
    """Which values are exact integers (the contract's id rule; range checked separately)."""
    kind = series.dtype.kind
    if kind == "i":
        return pd.Series(True, index=series.index)
    if kind == "u":
        return series < tx.ID_LIMIT
    if kind in "fb":  # a decimal point or a boolean: not an id
        return pd.Series(False, index=series.index)
    return series.map(_exact).astype(bool) | series.isna()  # missing: the null check reports it


def _number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def plain_numbers(series: pd.Series) -> pd.Series:
    """Which values are numbers: not booleans (``True`` is not 1.0), not text."""
    if series.dtype.kind == "b":
        return pd.Series(False, index=series.index)
    if series.dtype.kind == "O":
        return series.map(_number).astype(bool) | series.isna()
    return pd.Series(series.dtype.kind in "iuf", index=series.index)


def plain_times(series: pd.Series) -> pd.Series:
    """Which event-time values are date-times or strings (not bare numbers)."""
    if series.dtype.kind in "iufb":
        return pd.Series(False, index=series.index)
    if series.dtype.kind == "O":
        return ~series.map(lambda v: isinstance(v, int | float | np.number)) | series.isna()
    return pd.Series(True, index=series.index)


def naive_utc_times(series: pd.Series) -> pd.Series:
    """Event times as naive UTC (:func:`vigil.data.transaction.naive_utc` for a column).

    Values pandas cannot read stay as they are, for the contract to report them.
    """
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC").dt.tz_localize(None)
    if series.dtype.kind != "O" or not plain_times(series).all():
        return series
    try:
        parsed = pd.to_datetime(series, utc=True, format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        return series
    return parsed.dt.tz_localize(None)


def _extra_value_ok(value: object) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return True  # missing: null in JSON
    try:
        tx.check_extras({"value": value.item() if isinstance(value, np.generic) else value})
    except (ValueError, TypeError):
        return False
    return True


def _extra_column(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Which values of one extra column are storable, and the JSON bytes each takes."""
    kind = series.dtype.kind
    index = series.index
    name_bytes = len(str(series.name)) + 4
    if kind == "f":
        values = series.to_numpy()
        return pd.Series(np.isfinite(values) | np.isnan(values), index), pd.Series(
            name_bytes + 24, index
        )
    if kind == "u":
        return series < tx.ID_LIMIT, pd.Series(name_bytes + 20, index)
    if kind in "ibMm":
        return pd.Series(True, index=index), pd.Series(name_bytes + 32, index)
    ok = series.map(_extra_value_ok).astype(bool)
    sizes = series.map(lambda v: len(orjson.dumps(v, default=str)) if _extra_value_ok(v) else 0)
    return ok, sizes.astype(int) + name_bytes


def extra_fields(frame: pd.DataFrame) -> pd.Series:
    """Rows whose extra columns obey the contract's extra-field policy (size included)."""
    ok = pd.Series(True, index=frame.index)
    size = pd.Series(2, index=frame.index)
    for column in frame.columns:
        if column in _KNOWN_COLUMNS:
            continue
        try:
            tx.check_text(str(column), "extra field name")
        except ValueError:
            return pd.Series(False, index=frame.index)
        column_ok, column_size = _extra_column(frame[column])
        ok &= column_ok
        size += column_size
    return ok & (size <= tx.MAX_EXTRA_BYTES)


def _raw_checks(extras: bool = True) -> pa.DataFrameSchema:
    """What pandera's coercion would hide: truncated ids, boolean amounts, numeric times."""
    columns = {
        name: pa.Column(checks=pa.Check(exact_integers, name="exact_integer"), required=False)
        for name in _INTEGER_COLUMNS
    }
    columns[schema.TX_AMOUNT] = pa.Column(
        checks=pa.Check(plain_numbers, name="number"), required=False
    )
    columns[schema.TX_DATETIME] = pa.Column(
        checks=pa.Check(plain_times, name="iso_datetime"), required=False
    )
    return pa.DataFrameSchema(
        columns,
        checks=[pa.Check(extra_fields, name="extra_fields")] if extras else [],
        coerce=False,
        strict=False,
    )


def transaction_schema(
    require_labels: bool = False, policy: tx.EventTimePolicy = tx.DEFAULT_POLICY
) -> pa.DataFrameSchema:
    """The transaction contract (:mod:`vigil.data.transaction`) over a frame; extras allowed."""
    return pa.DataFrameSchema(
        {
            schema.TRANSACTION_ID: _id_column(unique=True),
            schema.TX_DATETIME: pa.Column(
                _TIMESTAMP,
                [
                    pa.Check.ge(tx.MIN_EVENT_TIME),
                    pa.Check(lambda s: s <= policy.latest(), name="not_in_future"),
                ],
                nullable=False,
            ),
            schema.CUSTOMER_ID: _id_column(),
            schema.TERMINAL_ID: _id_column(),
            schema.TX_AMOUNT: pa.Column(
                "float64", [pa.Check.ge(0), pa.Check.le(tx.MAX_AMOUNT)], nullable=False
            ),
            schema.TX_FRAUD: _label_column(required=require_labels),
            schema.TX_FRAUD_SCENARIO: pa.Column(
                "int8", pa.Check.isin(list(FRAUD_SCENARIOS)), nullable=False, required=False
            ),
        },
        name="transactions",
        coerce=True,
        strict=False,
    )


def _plain(value: object) -> object:
    """numpy scalars as Python ones, so messages read ``12`` and not ``np.int64(12)``."""
    return value.item() if isinstance(value, np.generic) else value


def _example(frame: pd.DataFrame, index: object, value: object) -> str:
    if index is None or index not in frame.index:  # table-level failures have no row
        return repr(_plain(value))
    shown = f"row {index}"
    if schema.TRANSACTION_ID in frame.columns:
        shown += f" ({schema.TRANSACTION_ID}={_plain(frame.at[index, schema.TRANSACTION_ID])!r})"
    return f"{shown}: {_plain(value)!r}"


def describe_failures(name: str, frame: pd.DataFrame, failures: pd.DataFrame) -> str:
    """One line per (column, check) with the failing row count and a few examples."""
    checks = failures["check"].astype(str)
    uncoercible = failures.loc[checks.str.startswith("coerce_dtype"), "column"]
    # A value that could not be coerced also fails the dtype check: report it once.
    failures = failures[~(checks.str.startswith("dtype(") & failures["column"].isin(uncoercible))]
    lines = []
    for (column, check), cases in failures.groupby(
        [failures["column"].fillna(""), failures["check"].astype(str)], sort=False
    ):
        if check == "column_in_dataframe":
            missing = ", ".join(repr(c) for c in cases["failure_case"])
            lines.append(f"missing column(s) {missing} (check 'column_in_dataframe')")
            continue
        examples = "; ".join(
            _example(frame, row["index"], row["failure_case"])
            for _, row in cases.head(MAX_EXAMPLES).iterrows()
        )
        lines.append(f"column {column!r}, check {check!r}: {len(cases)} row(s), e.g. {examples}")
    return f"{name} violate the data contract:\n  - " + "\n  - ".join(lines)


def _validate(
    frame: pd.DataFrame, contracts: Sequence[pa.DataFrameSchema], name: str
) -> pd.DataFrame:
    for time_column in (schema.TX_DATETIME, schema.LABELLED_AT):
        if time_column in frame.columns:
            frame = frame.assign(**{time_column: naive_utc_times(frame[time_column])})
    try:
        validated = frame
        for contract in contracts:
            validated = contract.validate(validated, lazy=True)
    except SchemaErrors as error:
        failures = error.failure_cases
        message = describe_failures(name, frame, failures)
        logger.debug("contract failures: %s", message)
        raise DataContractError(message, failures) from None
    # pandera coerces timestamps to ns; Vigil stores microseconds.
    dtypes = {c: d for c, d in schema.DTYPES.items() if c in validated.columns}
    if schema.LABELLED_AT in validated.columns:
        dtypes[schema.LABELLED_AT] = "datetime64[us]"
    return validated.astype(dtypes)


def validate_transactions(
    df: pd.DataFrame,
    require_labels: bool = False,
    policy: tx.EventTimePolicy = tx.DEFAULT_POLICY,
) -> pd.DataFrame:
    """Check ``df`` against the transaction contract; return it with schema dtypes.

    Event times are converted to naive UTC first; ``policy`` bounds how far in the future
    they may be.
    """
    contracts = (_raw_checks(), transaction_schema(require_labels, policy))
    return _validate(df, contracts, "transactions")
