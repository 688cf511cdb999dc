"""Read-only analytics over stored decisions (the UI's History and Analytics pages).

SQLite or PostgreSQL; nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Connection, Engine, Integer, case, cast, func, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from vigil.storage.errors import StorageError
from vigil.storage.tables import labels, predictions, transactions

SCORE_BINS = 20


class DatabaseNotReady(StorageError):
    """The configured database cannot be reached or has no Vigil tables."""


def check_database(engine: Engine) -> None:
    """Raise ``DatabaseNotReady`` unless ``engine`` reaches a database with Vigil's tables."""
    shown = engine.url.render_as_string(hide_password=True)
    try:
        present = set(inspect(engine).get_table_names())
    except SQLAlchemyError as error:
        raise DatabaseNotReady(f"Cannot reach the database {shown}: {error}") from error
    if not {predictions.name, transactions.name} <= present:
        raise DatabaseNotReady(
            f"The database {shown} has no Vigil tables yet: run `vigil db upgrade`."
        )


@dataclass(frozen=True)
class HistoryFilter:
    """Which stored predictions to show (``None`` means no filter on that field)."""

    limit: int = 200
    label: int | None = None
    model_version: str | None = None
    min_score: float = 0.0
    customer_id: int | None = None


def model_versions(connection: Connection) -> list[str]:
    """Every model version that has stored predictions, sorted."""
    query = select(predictions.c.model_version).distinct().order_by(predictions.c.model_version)
    return list(connection.execute(query).scalars())


def prediction_history(connection: Connection, where: HistoryFilter) -> pd.DataFrame:
    """The newest predictions matching ``where``, with their transaction and any fraud label."""
    query = (
        select(
            predictions.c.created_at,
            predictions.c.transaction_id,
            transactions.c.tx_datetime,
            transactions.c.customer_id,
            transactions.c.terminal_id,
            transactions.c.tx_amount,
            predictions.c.score,
            predictions.c.label,
            predictions.c.threshold,
            predictions.c.reason_codes,
            predictions.c.model_version,
            predictions.c.source,
            predictions.c.latency_ms,
            labels.c.tx_fraud,
        )
        .join_from(
            predictions, transactions, predictions.c.transaction_id == transactions.c.transaction_id
        )
        .outerjoin(labels, predictions.c.transaction_id == labels.c.transaction_id)
        .where(predictions.c.score >= where.min_score)
        .order_by(predictions.c.created_at.desc(), predictions.c.transaction_id.desc())
        .limit(where.limit)
    )
    if where.label is not None:
        query = query.where(predictions.c.label == where.label)
    if where.model_version is not None:
        query = query.where(predictions.c.model_version == where.model_version)
    if where.customer_id is not None:
        query = query.where(transactions.c.customer_id == where.customer_id)
    return pd.DataFrame(
        connection.execute(query).mappings().all(), columns=list(query.selected_columns.keys())
    )


def daily_summary(connection: Connection) -> pd.DataFrame:
    """Per transaction day: volume, flags, flagged amount, labelled and confirmed frauds."""
    day = func.date(transactions.c.tx_datetime).label("day")
    flagged = predictions.c.label == 1
    query = (
        select(
            day,
            func.count().label("transactions"),
            func.sum(transactions.c.tx_amount).label("amount"),
            func.sum(case((flagged, 1), else_=0)).label("flagged"),
            func.sum(case((flagged, transactions.c.tx_amount), else_=0.0)).label("flagged_amount"),
            func.count(labels.c.transaction_id).label("labelled"),
            func.sum(case((labels.c.tx_fraud == 1, 1), else_=0)).label("confirmed_frauds"),
            func.avg(predictions.c.score).label("mean_score"),
        )
        .join_from(
            predictions, transactions, predictions.c.transaction_id == transactions.c.transaction_id
        )
        .outerjoin(labels, predictions.c.transaction_id == labels.c.transaction_id)
        .group_by(day)
        .order_by(day)
    )
    frame = pd.DataFrame(
        connection.execute(query).mappings().all(), columns=[c.name for c in query.selected_columns]
    )
    frame["day"] = pd.to_datetime(frame["day"])
    frame["flag_rate"] = frame["flagged"] / frame["transactions"]
    frame["fraud_rate"] = frame["confirmed_frauds"] / frame["transactions"]
    return frame


def score_histogram(connection: Connection, bins: int = SCORE_BINS) -> pd.DataFrame:
    """Number of predictions per score bin of width ``1 / bins`` (a score of 1 is in the last)."""
    scaled = predictions.c.score * bins
    # CAST truncates in SQLite but rounds in PostgreSQL; floor first where floor exists.
    raw_bin = cast(
        func.floor(scaled) if connection.dialect.name == "postgresql" else scaled, Integer
    )
    bin_index = case((raw_bin >= bins, bins - 1), else_=raw_bin).label("bin")
    query = select(bin_index, func.count().label("predictions")).group_by(bin_index)
    counts: dict[int, int] = dict(connection.execute(query).tuples().all())
    return pd.DataFrame(
        {
            "score_from": [i / bins for i in range(bins)],
            "predictions": [int(counts.get(i, 0)) for i in range(bins)],
        }
    )
