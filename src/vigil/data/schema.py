"""Vigil's column names and dtypes: the one place that declares them."""

from __future__ import annotations

from collections.abc import Iterable

TRANSACTION_ID = "transaction_id"
TX_DATETIME = "tx_datetime"
CUSTOMER_ID = "customer_id"
TERMINAL_ID = "terminal_id"
TX_AMOUNT = "tx_amount"
TX_FRAUD = "tx_fraud"
TX_FRAUD_SCENARIO = "tx_fraud_scenario"
LABELLED_AT = "labelled_at"
TX_DATE = "tx_date"  # Parquet partition key (YYYY-MM-DD)

TRANSACTION_COLUMNS: tuple[str, ...] = (
    TRANSACTION_ID,
    TX_DATETIME,
    CUSTOMER_ID,
    TERMINAL_ID,
    TX_AMOUNT,
)

DTYPES: dict[str, str] = {
    TRANSACTION_ID: "int64",
    TX_DATETIME: "datetime64[us]",
    CUSTOMER_ID: "int64",
    TERMINAL_ID: "int64",
    TX_AMOUNT: "float64",
    TX_FRAUD: "int8",
    TX_FRAUD_SCENARIO: "int8",
}

_COLUMN_NAMES = {name.lower(): name for name in DTYPES}


def column_name(name: str) -> str:
    """The column a header name means, the one rule of every reader: a schema column's name in
    any case, spaces around it ignored (the handbook's upper-case ``TX_AMOUNT`` is
    ``tx_amount``); any other name without the spaces around it."""
    stripped = name.strip()
    return _COLUMN_NAMES.get(stripped.lower(), stripped)


def repeated_columns(names: Iterable[str]) -> list[str]:
    """The names a header holds more than once, in order: which of two cells of one column
    counts would be a guess, so a reader refuses such a header."""
    seen: set[str] = set()
    repeated: list[str] = []
    for name in names:
        if name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    return repeated


# What each TX_FRAUD_SCENARIO value means (the handbook's simulator; 4 is Vigil's drift).
SCENARIO_NAMES: dict[int, str] = {
    0: "genuine",
    1: "amount > 220",
    2: "compromised terminal",
    3: "compromised customer",
    4: "card testing (drift)",
}
