"""Read-only analytics over stored decisions (the UI's History and Analytics pages).

SQLite or PostgreSQL; nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, Integer, Select, and_, case, cast, func, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from vigil.storage.errors import StorageError
from vigil.storage.tables import case_transactions, labels, predictions, transactions

SCORE_BINS = 20
# Extra field the simulator's and the handbook's data carry: which fraud pattern, when labelled.
SCENARIO_FIELD = "tx_fraud_scenario"


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


def history_query(where: HistoryFilter) -> Select[Any]:
    """The query of :func:`prediction_history`.

    A card's transactions (``customer_id``) are read from the case queue's copy,
    ``case_transactions``, by its card index: ``transactions`` has none (every scored request
    would maintain it), so a card filter there reads every stored transaction.
    """
    tx = transactions if where.customer_id is None else case_transactions
    query = (
        select(
            predictions.c.created_at,
            predictions.c.transaction_id,
            tx.c.tx_datetime,
            tx.c.customer_id,
            tx.c.terminal_id,
            tx.c.tx_amount,
            predictions.c.score,
            predictions.c.label,
            predictions.c.threshold,
            predictions.c.reason_codes,
            predictions.c.model_version,
            predictions.c.source,
            predictions.c.latency_ms,
            labels.c.tx_fraud,
        )
        .join_from(predictions, tx, predictions.c.transaction_id == tx.c.transaction_id)
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
        query = query.where(tx.c.customer_id == where.customer_id)
    return query


def prediction_history(connection: Connection, where: HistoryFilter) -> pd.DataFrame:
    """The newest predictions matching ``where``, with their transaction and any fraud label.

    With a card filter, the case queue's copy must hold every stored day first
    (:func:`vigil.storage.case_copy.sync_stored_days`, which writes; nothing here does).
    """
    query = history_query(where)
    return pd.DataFrame(
        connection.execute(query).mappings().all(), columns=list(query.selected_columns.keys())
    )


@dataclass(frozen=True)
class AnalyticsFilter:
    """Which stored decisions the Analytics page aggregates (``None``: no filter on that field).

    ``start`` and ``end`` are transaction days, both included; ``scenario`` matches the
    ``tx_fraud_scenario`` extra field, which only labelled (simulated or published) data has.
    """

    start: date | None = None
    end: date | None = None
    model_version: str | None = None
    decision: int | None = None
    min_amount: float | None = None
    max_amount: float | None = None
    scenario: int | None = None


def _filtered(query: Select[Any], where: AnalyticsFilter) -> Select[Any]:
    tx = transactions.c
    conditions = []
    if where.start is not None:
        conditions.append(tx.tx_datetime >= datetime.combine(where.start, time.min))
    if where.end is not None:
        conditions.append(
            tx.tx_datetime < datetime.combine(where.end + timedelta(days=1), time.min)
        )
    if where.model_version is not None:
        conditions.append(predictions.c.model_version == where.model_version)
    if where.decision is not None:
        conditions.append(predictions.c.label == where.decision)
    if where.min_amount is not None:
        conditions.append(tx.tx_amount >= where.min_amount)
    if where.max_amount is not None:
        conditions.append(tx.tx_amount < where.max_amount)
    if where.scenario is not None:
        conditions.append(tx.extra[SCENARIO_FIELD].as_integer() == where.scenario)
    return query.where(and_(*conditions)) if conditions else query


def _joined(query: Select[Any]) -> Select[Any]:
    return query.join_from(
        predictions, transactions, predictions.c.transaction_id == transactions.c.transaction_id
    ).outerjoin(labels, predictions.c.transaction_id == labels.c.transaction_id)


def daily_summary(connection: Connection, where: AnalyticsFilter | None = None) -> pd.DataFrame:
    """Per transaction day: volume, flags, labels so far and what they say about the decisions.

    A fraud is *caught* when flagged and *missed* when approved; its amount is prevented or
    missed loss. ``awaiting_review`` counts flagged decisions with no label yet (the review
    queue). Precision and recall use the labels received so far, so they move as labels
    mature; ``labelled_share`` says how far they have.
    """
    day = func.date(transactions.c.tx_datetime).label("day")
    amount = transactions.c.tx_amount
    flagged, fraud, genuine = (
        predictions.c.label == 1,
        labels.c.tx_fraud == 1,
        labels.c.tx_fraud == 0,
    )
    query = _joined(
        select(
            day,
            func.count().label("transactions"),
            func.sum(amount).label("amount"),
            func.sum(case((flagged, 1), else_=0)).label("flagged"),
            func.sum(case((flagged, amount), else_=0.0)).label("flagged_amount"),
            func.count(labels.c.transaction_id).label("labelled"),
            func.sum(case((fraud, 1), else_=0)).label("confirmed_frauds"),
            func.sum(case((and_(flagged, fraud), 1), else_=0)).label("caught"),
            func.sum(case((and_(flagged, genuine), 1), else_=0)).label("false_alarms"),
            func.sum(case((and_(flagged, fraud), amount), else_=0.0)).label("prevented_loss"),
            func.sum(case((and_(~flagged, fraud), amount), else_=0.0)).label("missed_loss"),
            func.sum(case((and_(flagged, labels.c.transaction_id.is_(None)), 1), else_=0)).label(
                "awaiting_review"
            ),
            func.avg(predictions.c.score).label("mean_score"),
        )
    )
    query = _filtered(query, where or AnalyticsFilter()).group_by(day).order_by(day)
    frame = pd.DataFrame(
        connection.execute(query).mappings().all(), columns=[c.name for c in query.selected_columns]
    )
    frame["day"] = pd.to_datetime(frame["day"])
    frame["flag_rate"] = frame["flagged"] / frame["transactions"]
    frame["fraud_rate"] = frame["confirmed_frauds"] / frame["transactions"]
    judged = frame["caught"] + frame["false_alarms"]
    frame["precision"] = (frame["caught"] / judged).where(judged > 0)
    frame["recall"] = (frame["caught"] / frame["confirmed_frauds"]).where(
        frame["confirmed_frauds"] > 0
    )
    frame["labelled_share"] = frame["labelled"] / frame["transactions"]
    return frame


def score_histogram(
    connection: Connection, bins: int = SCORE_BINS, where: AnalyticsFilter | None = None
) -> pd.DataFrame:
    """Number of predictions per score bin of width ``1 / bins`` (a score of 1 is in the last)."""
    scaled = predictions.c.score * bins
    # CAST truncates in SQLite but rounds in PostgreSQL; floor first where floor exists.
    raw_bin = cast(
        func.floor(scaled) if connection.dialect.name == "postgresql" else scaled, Integer
    )
    bin_index = case((raw_bin >= bins, bins - 1), else_=raw_bin).label("bin")
    query = _filtered(
        _joined(select(bin_index, func.count().label("predictions"))), where or AnalyticsFilter()
    )
    query = query.group_by(bin_index)
    counts: dict[int, int] = dict(connection.execute(query).tuples().all())
    return pd.DataFrame(
        {
            "score_from": [i / bins for i in range(bins)],
            "predictions": [int(counts.get(i, 0)) for i in range(bins)],
        }
    )
