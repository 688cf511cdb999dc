"""The numbers of the EDA report: data quality and cleaning, fraud by time and entity, delay.

Every function takes a frame in Vigil's schema (``vigil.data.io.read_transactions``) and
returns plain values or small frames; plotting and wording live in ``eda_plots`` and ``eda``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from vigil.data import schema

# Tukey's "far out" fence: amounts above Q3 + 3 IQR are reported as outliers.
OUTLIER_IQR_FACTOR = 3.0
# The longest feature window: earlier days have partly empty windows.
WINDOW_WARMUP_DAYS = 30
DUPLICATE_KEY = (schema.TX_DATETIME, schema.CUSTOMER_ID, schema.TERMINAL_ID, schema.TX_AMOUNT)
# Which entity a fraud scenario compromises (handbook simulator): its label delay matters.
SCENARIO_ENTITY = {2: schema.TERMINAL_ID, 3: schema.CUSTOMER_ID}


@dataclass(frozen=True)
class Quality:
    """Data quality of the raw frame and what cleaning removes."""

    rows: int
    days: int
    customers: int
    terminals: int
    first_day: str
    last_day: str
    missing: dict[str, int]
    duplicate_ids: int
    duplicate_rows: int
    negative_amounts: int
    zero_amounts: int
    outlier_threshold: float
    outliers: int
    outlier_fraud_rate: float
    fraud_rate: float
    rows_after_cleaning: int


def quality(frame: pd.DataFrame) -> Quality:
    """Missing values, duplicates (by id and by content), impossible and extreme amounts."""
    amounts = frame[schema.TX_AMOUNT]
    q1, q3 = amounts.quantile([0.25, 0.75])
    threshold = float(q3 + OUTLIER_IQR_FACTOR * (q3 - q1))
    extreme = amounts > threshold
    labels = frame[schema.TX_FRAUD]
    days = frame[schema.TX_DATETIME].dt.normalize()
    return Quality(
        rows=len(frame),
        days=int(days.nunique()),
        customers=int(frame[schema.CUSTOMER_ID].nunique()),
        terminals=int(frame[schema.TERMINAL_ID].nunique()),
        first_day=str(days.min().date()),
        last_day=str(days.max().date()),
        missing={str(c): int(n) for c, n in frame.isna().sum().items()},
        duplicate_ids=int(frame[schema.TRANSACTION_ID].duplicated().sum()),
        duplicate_rows=int(frame.duplicated(list(DUPLICATE_KEY)).sum()),
        negative_amounts=int((amounts < 0).sum()),
        zero_amounts=int((amounts == 0).sum()),
        outlier_threshold=threshold,
        outliers=int(extreme.sum()),
        outlier_fraud_rate=float(labels[extreme].mean()) if extreme.any() else 0.0,
        fraud_rate=float(labels.mean()),
        rows_after_cleaning=len(clean(frame)),
    )


def clean(frame: pd.DataFrame) -> pd.DataFrame:
    """What Vigil's data contract accepts: no missing required value, unique ids, amount >= 0.

    Outliers are kept on purpose: large amounts are one of the fraud scenarios.
    """
    required = [*schema.TRANSACTION_COLUMNS, schema.TX_FRAUD]
    kept = frame.dropna(subset=required)
    kept = kept[kept[schema.TX_AMOUNT] >= 0]
    return kept.drop_duplicates(schema.TRANSACTION_ID).reset_index(drop=True)


def rate_by(frame: pd.DataFrame, key: pd.Series) -> pd.DataFrame:
    """Transactions, frauds and fraud rate per value of ``key``."""
    grouped = frame[schema.TX_FRAUD].groupby(key).agg(["size", "sum"])
    grouped.columns = ["transactions", "frauds"]
    grouped["fraud_rate"] = grouped["frauds"] / grouped["transactions"]
    return grouped


def fraud_concentration(frame: pd.DataFrame, entity: str) -> pd.DataFrame:
    """Per entity with a fraud: its frauds, sorted, with the cumulative share of all frauds."""
    per_entity = frame.loc[frame[schema.TX_FRAUD] == 1, entity].value_counts()
    share = per_entity.cumsum() / per_entity.sum()
    return pd.DataFrame({"frauds": per_entity.to_numpy(), "cumulative_share": share.to_numpy()})


def delay_visibility(frame: pd.DataFrame, delays: range) -> pd.DataFrame:
    """Share of a compromise's frauds made after its first fraud is known, per label delay.

    A compromised terminal (scenario 2) or customer (3) is only known once its first fraud's
    label arrives, ``d`` days later; frauds before that cannot be caught by the entity's
    risk feature. Rows: delay in days; columns: scenario name.
    """
    if schema.TX_FRAUD_SCENARIO not in frame.columns:
        return pd.DataFrame(index=pd.Index(list(delays), name="delay_days"))
    out = {}
    for scenario, entity in SCENARIO_ENTITY.items():
        frauds = frame[frame[schema.TX_FRAUD_SCENARIO] == scenario]
        if frauds.empty:
            continue
        times = frauds[schema.TX_DATETIME]
        first = times.groupby(frauds[entity]).transform("min")
        waited = (times - first).dt.total_seconds().to_numpy() / 86_400
        out[schema.SCENARIO_NAMES[scenario]] = [float(np.mean(waited > d)) for d in delays]
    return pd.DataFrame(out, index=pd.Index(list(delays), name="delay_days"))


def split_periods(frame: pd.DataFrame, days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A reference period after the first 30 days (windows filled) and the last period.

    Each is ``days`` long, or shorter so that the two do not overlap on a short dataset.
    """
    day = frame[schema.TX_DATETIME].dt.normalize()
    span = int((day.max() - day.min()).days) + 1
    warmup = WINDOW_WARMUP_DAYS if span >= WINDOW_WARMUP_DAYS + 2 else 0
    length = pd.Timedelta(days=min(days, max(1, (span - warmup) // 2)))
    start = day.min() + pd.Timedelta(days=warmup)
    reference = frame[(day >= start) & (day < start + length)]
    current = frame[day > day.max() - length]
    return reference, current
