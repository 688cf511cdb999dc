"""Data contracts (pandera): what a transaction batch and a label batch must satisfy.

Validation is lazy (every failure collected) and a failure raises :class:`DataContractError`
whose message names the column, the check and example rows, so callers can reject a batch
before anything is written.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from vigil.data import schema

logger = logging.getLogger(__name__)

MAX_EXAMPLES = 3
FRAUD_SCENARIOS = (0, 1, 2, 3, 4)


class DataContractError(ValueError):
    """A batch of data broke its contract; ``failures`` holds pandera's failure cases."""

    def __init__(self, message: str, failures: pd.DataFrame) -> None:
        super().__init__(message)
        self.failures = failures


def _id_column(unique: bool = False) -> pa.Column:
    return pa.Column("int64", pa.Check.ge(0), nullable=False, unique=unique)


def _label_column(required: bool) -> pa.Column:
    return pa.Column("int8", pa.Check.isin([0, 1]), nullable=False, required=required)


def transaction_schema(require_labels: bool = False) -> pa.DataFrameSchema:
    """The transaction contract; extra columns pass through."""
    return pa.DataFrameSchema(
        {
            schema.TRANSACTION_ID: _id_column(unique=True),
            schema.TX_DATETIME: pa.Column("datetime64[ns]", nullable=False),
            schema.CUSTOMER_ID: _id_column(),
            schema.TERMINAL_ID: _id_column(),
            schema.TX_AMOUNT: pa.Column("float64", pa.Check.ge(0), nullable=False),
            schema.TX_FRAUD: _label_column(required=require_labels),
            schema.TX_FRAUD_SCENARIO: pa.Column(
                "int8", pa.Check.isin(list(FRAUD_SCENARIOS)), nullable=False, required=False
            ),
        },
        name="transactions",
        coerce=True,
        strict=False,
    )


def label_schema() -> pa.DataFrameSchema:
    """The label contract: ``transaction_id, tx_fraud, labelled_at``."""
    return pa.DataFrameSchema(
        {
            schema.TRANSACTION_ID: _id_column(unique=True),
            schema.TX_FRAUD: _label_column(required=True),
            schema.LABELLED_AT: pa.Column("datetime64[ns]", nullable=False),
        },
        name="labels",
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


def _validate(frame: pd.DataFrame, contract: pa.DataFrameSchema, name: str) -> pd.DataFrame:
    try:
        validated = contract.validate(frame, lazy=True)
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


def validate_transactions(df: pd.DataFrame, require_labels: bool = False) -> pd.DataFrame:
    """Check ``df`` against the transaction contract; return it with schema dtypes."""
    return _validate(df, transaction_schema(require_labels), "transactions")


def validate_labels(df: pd.DataFrame) -> pd.DataFrame:
    """Check ``df`` against the label contract; return it with schema dtypes."""
    return _validate(df, label_schema(), "labels")
