"""The feature SQL: the one offline definition of every feature, written for DuckDB.

Order of transactions is ``(tx_datetime, transaction_id)``; a transaction sees the
transactions before it in that order plus itself. Windows are durations of ``n * 86400``
seconds over integer microseconds, so ``(t - n days, t]`` is the RANGE frame
``n * 86400e6 - 1 PRECEDING AND CURRENT ROW``. A RANGE frame ending at CURRENT ROW also
holds the later transactions of the same customer at the same instant; the ``later_*``
columns take them back out so that ties follow the tie order exactly.
"""

from __future__ import annotations

from vigil.config import FeaturesConfig
from vigil.data import schema
from vigil.features import definitions as fd

US_PER_DAY = fd.SECONDS_PER_DAY * 1_000_000


def check_config(config: FeaturesConfig) -> None:
    """Reject settings for which point-in-time features are undefined."""
    if config.label_delay_days < 1:
        raise ValueError(
            "features.label_delay_days must be >= 1: with no delay a transaction's own label "
            "would enter its terminal risk (not known at scoring time)"
        )
    if len(set(config.windows_days)) != len(config.windows_days) or min(config.windows_days) < 1:
        raise ValueError(f"features.windows_days must be distinct and >= 1: {config.windows_days}")


def _range(partition: str, start_us: int, end_us: int | None) -> str:
    """A RANGE frame over ``ts`` holding rows with ``ts - start_us < ts_j <= ts - end_us``."""
    end = "CURRENT ROW" if end_us is None else f"{end_us} PRECEDING"
    return (
        f"(PARTITION BY {partition} ORDER BY ts RANGE BETWEEN {start_us - 1} PRECEDING AND {end})"
    )


def _window_columns(config: FeaturesConfig) -> list[str]:
    """Raw window aggregates (counts, sums, fraud counts) computed in the ``windowed`` CTE."""
    delay_us = config.label_delay_days * US_PER_DAY
    cols = []
    for n in config.windows_days:
        frame = _range(schema.CUSTOMER_ID, n * US_PER_DAY, None)
        cols += [
            f"count(*) OVER {frame} AS c_cnt_{n}",
            f"sum({schema.TX_AMOUNT}) OVER {frame} AS c_sum_{n}",
        ]
        frame = _range(schema.TERMINAL_ID, delay_us + n * US_PER_DAY, delay_us)
        cols += [
            f"count(*) OVER {frame} AS t_cnt_{n}",
            f"coalesce(sum(fraud) OVER {frame}, 0) AS t_fraud_{n}",
        ]
    cols += [
        "count(*) OVER later_peers AS later_cnt",
        f"coalesce(sum({schema.TX_AMOUNT}) OVER later_peers, 0) AS later_sum",
    ]
    if config.extended:
        longest = max(config.windows_days) * US_PER_DAY
        frame = _range(schema.CUSTOMER_ID, delay_us + longest, delay_us)
        cols += [
            f"count(*) OVER {frame} AS c_risk_cnt",
            f"coalesce(sum(fraud) OVER {frame}, 0) AS c_risk_fraud",
            "row_number() OVER (PARTITION BY customer_id, ts ORDER BY transaction_id) AS peer_rank",
            "max(ts) OVER (PARTITION BY customer_id ORDER BY ts "
            "RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_ts",
        ]
    return cols


def _feature_expressions(config: FeaturesConfig) -> list[str]:
    """``expression AS name`` for every feature, in :func:`feature_names` order."""
    longest = max(config.windows_days)
    exprs = {
        fd.TX_AMOUNT: f"CAST({schema.TX_AMOUNT} AS DOUBLE)",
        fd.TX_DURING_WEEKEND: f"CAST(isodow({schema.TX_DATETIME}) >= 6 AS DOUBLE)",
        fd.TX_DURING_NIGHT: (
            f"CAST(hour({schema.TX_DATETIME}) <= {config.night_end_hour} AS DOUBLE)"
        ),
    }
    for n in config.windows_days:
        count = f"(c_cnt_{n} - later_cnt)"
        exprs[fd.customer_nb_tx(n)] = f"CAST({count} AS DOUBLE)"
        exprs[fd.customer_avg_amount(n)] = f"(c_sum_{n} - later_sum) / {count}"
        exprs[fd.terminal_nb_tx(n)] = f"CAST(t_cnt_{n} AS DOUBLE)"
        exprs[fd.terminal_risk(n)] = (
            f"CASE WHEN t_cnt_{n} = 0 THEN 0.0 ELSE t_fraud_{n} / t_cnt_{n} END"
        )
    if config.extended:
        avg = exprs[fd.customer_avg_amount(longest)]
        cap = longest * fd.SECONDS_PER_DAY
        exprs[fd.AMOUNT_OVER_CUSTOMER_AVG] = (
            f"CASE WHEN {avg} = 0 THEN 1.0 ELSE {schema.TX_AMOUNT} / ({avg}) END"
        )
        exprs[fd.SECONDS_SINCE_CUSTOMER_PREV_TX] = (
            f"CASE WHEN peer_rank > 1 THEN 0.0 WHEN prev_ts IS NULL THEN {float(cap)} "
            f"ELSE least((ts - prev_ts) / 1e6, {float(cap)}) END"
        )
        exprs[fd.CUSTOMER_RISK_LONGEST] = (
            "CASE WHEN c_risk_cnt = 0 THEN 0.0 ELSE c_risk_fraud / c_risk_cnt END"
        )
    return [f"{exprs[name]} AS {name}" for name in fd.feature_names(config)]


def feature_sql(
    config: FeaturesConfig,
    source: str,
    has_fraud: bool,
    passthrough: list[str],
    where: str = "TRUE",
) -> str:
    """SELECT computing ids, ``passthrough`` label columns and the features over ``source``.

    ``where`` filters the output rows only (after the windows), so a caller can compute a
    slice of rows from a source that also holds their history.
    """
    check_config(config)
    fraud = f"CAST({schema.TX_FRAUD} AS DOUBLE)" if has_fraud else "CAST(NULL AS DOUBLE)"
    keys = [
        f"CAST({schema.TRANSACTION_ID} AS BIGINT) AS {schema.TRANSACTION_ID}",
        f"CAST({schema.TX_DATETIME} AS TIMESTAMP) AS {schema.TX_DATETIME}",
        f"CAST({schema.CUSTOMER_ID} AS BIGINT) AS {schema.CUSTOMER_ID}",
        f"CAST({schema.TERMINAL_ID} AS BIGINT) AS {schema.TERMINAL_ID}",
    ]
    labels = [f"CAST({name} AS TINYINT) AS {name}" for name in passthrough]
    outputs = [*keys, *labels, *_feature_expressions(config)]
    return f"""
WITH base AS (
    SELECT *, epoch_us({schema.TX_DATETIME}) AS ts, {fraud} AS fraud FROM {source}
),
windowed AS (
    SELECT *, {", ".join(_window_columns(config))}
    FROM base
    WINDOW later_peers AS (
        PARTITION BY {schema.CUSTOMER_ID}, ts ORDER BY {schema.TRANSACTION_ID}
        ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING
    )
)
SELECT {", ".join(outputs)}
FROM windowed
WHERE {where}
ORDER BY {schema.TX_DATETIME}, {schema.TRANSACTION_ID}
"""
