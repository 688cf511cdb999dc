"""The verdict features offline: one DuckDB query over transactions and a verdict log.

Same definitions as the online state (:mod:`vigil.features.verdicts`): a transaction at ``t``
sees the latest verdict of each transaction of its terminal (customer) in ``(t - W, t]``
reviewed strictly before ``t``.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pandas as pd

from vigil.config import FeaturesConfig
from vigil.data import schema
from vigil.features.definitions import verdict_feature_names
from vigil.features.verdicts import (
    REVIEWED_AT,
    TERMINAL_COMPROMISED,
    US_PER_DAY,
    VERDICT_COLUMNS,
    Verdict,
)

ID = schema.TRANSACTION_ID


def empty_verdict_log() -> pd.DataFrame:
    """A verdict log with no rows (and the log's columns and dtypes)."""
    return verdict_log_frame([])


def verdict_log_frame(verdicts: Sequence[Verdict]) -> pd.DataFrame:
    """A verdict log frame from verdicts, in the given (arrival) order."""
    rows = [
        (
            v.transaction_id,
            v.customer_id,
            v.terminal_id,
            v.tx_datetime,
            int(v.fraud),
            int(v.terminal_compromised),
            v.reviewed_at,
        )
        for v in verdicts
    ]
    frame = pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))
    for column in (schema.TX_DATETIME, REVIEWED_AT):
        frame[column] = pd.to_datetime(frame[column])
    return frame.astype({schema.TX_FRAUD: "int8", TERMINAL_COMPROMISED: "int8"})


def _entity_sql(entity: str, window_us: int) -> str:
    """Verdict counts per transaction over its ``entity`` (customer or terminal).

    Each reviewed transaction counts once, with its latest verdict reviewed before ``x.ts``.
    """
    compromised = "fraud = 1 AND compromised = 1"
    return f"""
SELECT x.{ID}, count(s.ts) AS reviewed, coalesce(sum(s.fraud), 0) AS frauds,
    count(CASE WHEN {compromised} THEN 1 END) AS compromised,
    min(CASE WHEN {compromised} THEN s.ts END) AS first_compromised
FROM x LEFT JOIN (
    SELECT x.{ID} AS seen_by, v.ts, v.fraud, v.compromised
    FROM x JOIN v
        ON v.{entity} = x.{entity} AND v.ts > x.ts - {window_us} AND v.ts <= x.ts
        AND v.reviewed < x.ts
    QUALIFY row_number() OVER (
        PARTITION BY x.{ID}, v.{ID} ORDER BY v.reviewed DESC, v.log_order DESC
    ) = 1
) AS s ON s.seen_by = x.{ID}
GROUP BY x.{ID}"""


def verdict_features_sql(config: FeaturesConfig) -> str:
    """Verdict features of the rows of ``transactions`` given the log ``verdicts``.

    ``transactions`` has the first four transaction columns, ``verdicts`` the columns of
    :data:`VERDICT_COLUMNS` plus ``log_order`` (arrival order: breaks ties of review time).
    """
    window_us = config.verdict_window_days * US_PER_DAY
    names = verdict_feature_names(config)
    ratio = "CASE WHEN {0}.reviewed = 0 THEN 0.0 ELSE {0}.frauds / {0}.reviewed END"
    values = [
        "CAST(t.reviewed AS DOUBLE)",
        "CAST(t.frauds AS DOUBLE)",
        ratio.format("t"),
        "CAST(t.compromised AS DOUBLE)",
        f"coalesce((x.ts - t.first_compromised) / {float(US_PER_DAY)}, 0.0)",
        "CAST(c.reviewed AS DOUBLE)",
        "CAST(c.frauds AS DOUBLE)",
        ratio.format("c"),
    ]
    tx_time = f"epoch_us(CAST({schema.TX_DATETIME} AS TIMESTAMP))"
    return f"""
WITH x AS (
    SELECT {ID}, {schema.CUSTOMER_ID}, {schema.TERMINAL_ID}, {tx_time} AS ts FROM transactions
), v AS (
    SELECT {ID}, {schema.CUSTOMER_ID}, {schema.TERMINAL_ID}, {tx_time} AS ts, log_order,
        CAST({schema.TX_FRAUD} AS INTEGER) AS fraud,
        CAST({TERMINAL_COMPROMISED} AS INTEGER) AS compromised,
        epoch_us(CAST({REVIEWED_AT} AS TIMESTAMP)) AS reviewed
    FROM verdicts
), t AS ({_entity_sql(schema.TERMINAL_ID, window_us)}
), c AS ({_entity_sql(schema.CUSTOMER_ID, window_us)}
)
SELECT x.{ID},
    {", ".join(f"{value} AS {name}" for value, name in zip(values, names, strict=True))}
FROM x JOIN t USING ({ID}) JOIN c USING ({ID})"""


def verdict_features_frame(
    config: FeaturesConfig, transactions: pd.DataFrame, verdicts: pd.DataFrame
) -> pd.DataFrame:
    """``transaction_id`` and the verdict features of each transaction (any order).

    ``verdicts`` is a verdict log (:data:`VERDICT_COLUMNS`), rows in arrival order.
    """
    missing = [c for c in VERDICT_COLUMNS if c not in verdicts.columns]
    if missing:
        raise ValueError(f"verdict log lacks columns {missing}")
    log = verdicts[list(VERDICT_COLUMNS)].assign(log_order=range(len(verdicts)))
    txs = transactions[[*schema.TRANSACTION_COLUMNS[:4]]]
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"SET threads = {int(config.duckdb_threads)}")
        con.register("transactions", txs)
        con.register("verdicts", log)
        return con.execute(verdict_features_sql(config)).df()
    finally:
        con.close()


def with_verdict_features(
    config: FeaturesConfig, features: pd.DataFrame, verdicts: pd.DataFrame
) -> pd.DataFrame:
    """A feature table (rows of the feature SQL) with the verdict features joined on, same order."""
    values = verdict_features_frame(config, features, verdicts)
    names = verdict_feature_names(config)
    joined = features.drop(columns=names, errors="ignore").merge(
        values, on=schema.TRANSACTION_ID, how="left", validate="one_to_one"
    )
    joined.index = features.index
    return joined
