"""Reference: the DuckDB feature SQL of the engine before ADR 0013, kept as the test oracle.

The compiled kernels (:mod:`vigil.features.kernels`) replaced it; tests compare them with it.

Order of transactions is ``(tx_datetime, transaction_id)``; a transaction sees the
transactions before it in that order plus itself. Windows are durations of ``n * 86400``
seconds over integer microseconds ``ts``, so ``(t - n days, t]`` is the RANGE frame
``n * 86400e6 - 1 PRECEDING AND CURRENT ROW``. A RANGE frame ending at CURRENT ROW also
holds the later transactions of the same customer at the same instant; the ``later_*``
columns take them back out so that ties follow the tie order exactly.

The SQL comes in three parts so that a large build can run the customer part per
customer-hash bucket and the terminal part per terminal-hash bucket (each needs only its
own entity's history), then join them; :func:`feature_sql` joins them in one query.
"""

from __future__ import annotations

import pandas as pd

from vigil.config import FeaturesConfig
from vigil.data import schema
from vigil.features import definitions as fd
from vigil.features.definitions import check_config

US_PER_DAY = fd.SECONDS_PER_DAY * 1_000_000
ID, TS = schema.TRANSACTION_ID, "ts"


def base_sql(source: str, has_fraud: bool, passthrough: list[str]) -> str:
    """Typed transaction columns plus ``ts`` (epoch microseconds) and ``fraud`` (NULL if absent)."""
    fraud = f"CAST({schema.TX_FRAUD} AS DOUBLE)" if has_fraud else "CAST(NULL AS DOUBLE)"
    labels = [f"CAST({name} AS TINYINT) AS {name}" for name in passthrough]
    columns = [
        f"CAST({ID} AS BIGINT) AS {ID}",
        f"CAST({schema.TX_DATETIME} AS TIMESTAMP) AS {schema.TX_DATETIME}",
        f"CAST({schema.CUSTOMER_ID} AS BIGINT) AS {schema.CUSTOMER_ID}",
        f"CAST({schema.TERMINAL_ID} AS BIGINT) AS {schema.TERMINAL_ID}",
        f"CAST({schema.TX_AMOUNT} AS DOUBLE) AS {schema.TX_AMOUNT}",
        *labels,
        f"epoch_us(CAST({schema.TX_DATETIME} AS TIMESTAMP)) AS {TS}",
        f"{fraud} AS fraud",
    ]
    return f"SELECT {', '.join(columns)} FROM {source}"


def _range(partition: str, start_us: int, end_us: int | None) -> str:
    """A RANGE frame over ``ts`` holding rows with ``ts - start_us < ts_j <= ts - end_us``."""
    end = "CURRENT ROW" if end_us is None else f"{end_us} PRECEDING"
    return (
        f"(PARTITION BY {partition} ORDER BY {TS} RANGE BETWEEN {start_us - 1} PRECEDING AND {end})"
    )


def _ratio(numerator: str, count: str) -> str:
    return f"CASE WHEN {count} = 0 THEN 0.0 ELSE {numerator} / {count} END"


def customer_sql(config: FeaturesConfig, relation: str, where: str = "TRUE") -> str:
    """``transaction_id, ts`` and the customer features of the rows of ``relation`` in ``where``.

    ``where`` must keep whole customers (e.g. a customer-hash bucket).
    """
    delay_us = config.label_delay_days * US_PER_DAY
    longest = max(config.windows_days)
    windows, features = [], []
    for n in config.windows_days:
        frame = _range(schema.CUSTOMER_ID, n * US_PER_DAY, None)
        windows += [
            f"count(*) OVER {frame} AS c_cnt_{n}",
            f"sum({schema.TX_AMOUNT}) OVER {frame} AS c_sum_{n}",
        ]
        count = f"(c_cnt_{n} - later_cnt)"
        features += [
            f"CAST({count} AS DOUBLE) AS {fd.customer_nb_tx(n)}",
            f"(c_sum_{n} - later_sum) / {count} AS {fd.customer_avg_amount(n)}",
        ]
    if config.extended:
        frame = _range(schema.CUSTOMER_ID, delay_us + longest * US_PER_DAY, delay_us)
        windows += [
            f"count(*) OVER {frame} AS c_risk_cnt",
            f"coalesce(sum(fraud) OVER {frame}, 0) AS c_risk_fraud",
            f"row_number() OVER (PARTITION BY {schema.CUSTOMER_ID}, {TS} ORDER BY {ID}) "
            "AS peer_rank",
            f"max({TS}) OVER (PARTITION BY {schema.CUSTOMER_ID} ORDER BY {TS} "
            "RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_ts",
        ]
        avg = f"((c_sum_{longest} - later_sum) / (c_cnt_{longest} - later_cnt))"
        cap = float(longest * fd.SECONDS_PER_DAY)
        features += [
            f"CASE WHEN {avg} = 0 THEN 1.0 ELSE {schema.TX_AMOUNT} / {avg} END "
            f"AS {fd.AMOUNT_OVER_CUSTOMER_AVG}",
            f"CASE WHEN peer_rank > 1 THEN 0.0 WHEN prev_ts IS NULL THEN {cap} "
            f"ELSE least(({TS} - prev_ts) / 1e6, {cap}) END AS {fd.SECONDS_SINCE_CUSTOMER_PREV_TX}",
            f"{_ratio('c_risk_fraud', 'c_risk_cnt')} AS {fd.CUSTOMER_RISK_LONGEST}",
        ]
    if fd.CUSTOMER_AMOUNT_BASELINE in config.extra:
        w, f = _amount_baseline(config)
        windows, features = windows + w, features + f
    return f"""
SELECT {ID}, {TS}, {", ".join(features)}
FROM (
    SELECT *, {", ".join(windows)},
        count(*) OVER later_peers AS later_cnt,
        coalesce(sum({schema.TX_AMOUNT}) OVER later_peers, 0) AS later_sum
    FROM {relation}
    WHERE {where}
    WINDOW later_peers AS (
        PARTITION BY {schema.CUSTOMER_ID}, {TS} ORDER BY {ID}
        ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING
    )
)"""


def _amount_baseline(config: FeaturesConfig) -> tuple[list[str], list[str]]:
    """Windows and features of the customer-amount-baseline group (prior = earlier instants)."""
    amount, cap = schema.TX_AMOUNT, fd.AMOUNT_RATIO_CAP
    prior = _range(schema.CUSTOMER_ID, max(config.windows_days) * US_PER_DAY, 1)
    recent = _range(schema.CUSTOMER_ID, fd.amount_window_days(config) * US_PER_DAY, 1)
    windows = [
        f"count(*) OVER {prior} AS p_cnt",
        f"sum({amount}) OVER {prior} AS p_sum",
        f"median({amount}) OVER {prior} AS p_med",
        f"max({amount}) OVER {recent} AS p_max",
    ]

    def ratio(numerator: str, baseline: str) -> str:
        return (
            f"CASE WHEN p_cnt = 0 OR {baseline} = 0 THEN 1.0 "
            f"ELSE least({numerator} / {baseline}, {cap}) END"
        )

    largest = f"greatest({amount}, coalesce(p_max, {amount}))"
    features = [
        f"{ratio(amount, 'p_med')} AS {fd.AMOUNT_OVER_PRIOR_MEDIAN}",
        f"{ratio(amount, '(p_sum / p_cnt)')} AS {fd.AMOUNT_OVER_PRIOR_MEAN}",
        f"{ratio(largest, 'p_med')} "
        f"AS {fd.max_amount_over_prior_median(fd.amount_window_days(config))}",
    ]
    return windows, features


def terminal_sql(config: FeaturesConfig, relation: str, where: str = "TRUE") -> str:
    """``transaction_id, ts`` and the terminal features of the rows of ``relation`` in ``where``.

    ``where`` must keep whole terminals (e.g. a terminal-hash bucket).
    """
    delay_us = config.label_delay_days * US_PER_DAY
    windows, features = [], []
    for n in config.windows_days:
        frame = _range(schema.TERMINAL_ID, delay_us + n * US_PER_DAY, delay_us)
        windows += [
            f"count(*) OVER {frame} AS t_cnt_{n}",
            f"coalesce(sum(fraud) OVER {frame}, 0) AS t_fraud_{n}",
        ]
        features += [
            f"CAST(t_cnt_{n} AS DOUBLE) AS {fd.terminal_nb_tx(n)}",
            f"{_ratio(f't_fraud_{n}', f't_cnt_{n}')} AS {fd.terminal_risk(n)}",
        ]
    if fd.TERMINAL_FRAUD_RUN in config.extra:
        longest = max(config.windows_days)
        frame = _range(schema.TERMINAL_ID, delay_us + longest * US_PER_DAY, delay_us)
        fraud_ts = f"CASE WHEN fraud > 0 THEN {TS} END"
        windows += [
            f"min({fraud_ts}) OVER {frame} AS t_first",
            f"max({fraud_ts}) OVER {frame} AS t_last",
        ]
        features += [
            f"coalesce(({TS} - t_first) / {float(US_PER_DAY)}, 0.0) "
            f"AS {fd.DAYS_SINCE_FIRST_KNOWN_FRAUD}",
            f"coalesce(({TS} - t_last) / {float(US_PER_DAY)}, 0.0) "
            f"AS {fd.DAYS_SINCE_LAST_KNOWN_FRAUD}",
            f"CAST(t_fraud_{longest} AS DOUBLE) AS {fd.TERMINAL_KNOWN_FRAUDS}",
        ]
    return f"""
SELECT {ID}, {TS}, {", ".join(features)}
FROM (SELECT *, {", ".join(windows)} FROM {relation} WHERE {where})"""


def row_features(config: FeaturesConfig) -> dict[str, str]:
    """Features of the transaction alone, as expressions over the base columns."""
    night = f"hour({schema.TX_DATETIME}) <= {config.night_end_hour}"
    return {
        fd.TX_AMOUNT: schema.TX_AMOUNT,
        fd.TX_DURING_WEEKEND: f"CAST(isodow({schema.TX_DATETIME}) >= 6 AS DOUBLE)",
        fd.TX_DURING_NIGHT: f"CAST({night} AS DOUBLE)",
    }


def assemble_sql(
    config: FeaturesConfig,
    base: str,
    customers: str,
    terminals: str,
    passthrough: list[str],
    where: str = "TRUE",
) -> str:
    """Ids, labels and every feature in :func:`feature_names` order, sorted by tie order."""
    rows = row_features(config)
    keys = [ID, schema.TX_DATETIME, schema.CUSTOMER_ID, schema.TERMINAL_ID]
    features = [f"{rows[n]} AS {n}" if n in rows else n for n in fd.stream_feature_names(config)]
    return f"""
SELECT {", ".join([*(f"b.{k}" for k in keys), *passthrough, *features])}
FROM ({base}) AS b
JOIN ({customers}) AS c USING ({ID})
JOIN ({terminals}) AS t USING ({ID})
WHERE {where}
ORDER BY b.{TS}, b.{ID}"""


def feature_sql(
    config: FeaturesConfig, source: str, has_fraud: bool, passthrough: list[str]
) -> str:
    """One query computing ids, ``passthrough`` labels and all features over ``source``."""
    check_config(config)
    customers, terminals = customer_sql(config, "base"), terminal_sql(config, "base")
    query = assemble_sql(config, "SELECT * FROM base", customers, terminals, passthrough)
    return f"WITH base AS ({base_sql(source, has_fraud, passthrough)}) {query}"


def reference_features(config: FeaturesConfig, transactions: pd.DataFrame) -> pd.DataFrame:
    """The reference engine's features for an in-memory frame (one DuckDB query)."""
    import duckdb

    lower = {c.lower() for c in transactions.columns}
    passthrough = [c for c in (schema.TX_FRAUD, schema.TX_FRAUD_SCENARIO) if c in lower]
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("transactions_frame", transactions)
        sql = feature_sql(config, "transactions_frame", schema.TX_FRAUD in lower, passthrough)
        return con.execute(sql).df()
    finally:
        con.close()
