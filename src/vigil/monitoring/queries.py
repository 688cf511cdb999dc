"""Read-only queries of the monitoring marts: stored decisions with the labels that arrived.

Reads the tables the serving writer fills (:mod:`vigil.storage.tables`); nothing here
writes, so the hot path's writer and its indexes stay as they are.
"""

from __future__ import annotations

from datetime import date, datetime, time

import pandas as pd
from sqlalchemy import Connection, and_, case, func, select

from vigil.data.schema import CUSTOMER_ID, TRANSACTION_ID, TX_AMOUNT, TX_DATETIME, TX_FRAUD
from vigil.monitoring.performance import LABEL, SCORE, BusinessTotals
from vigil.storage.tables import labels, predictions, transactions


def labelled_predictions(connection: Connection, start: date, end: date) -> pd.DataFrame:
    """Decisions on transactions made in [start, end] (days), with ``tx_fraud`` or NaN."""
    query = (
        select(
            predictions.c.transaction_id,
            transactions.c.tx_datetime,
            transactions.c.customer_id,
            transactions.c.tx_amount,
            predictions.c.score,
            predictions.c.label,
            predictions.c.model_version,
            labels.c.tx_fraud,
        )
        .join_from(
            predictions,
            transactions,
            predictions.c.transaction_id == transactions.c.transaction_id,
        )
        .join(labels, labels.c.transaction_id == predictions.c.transaction_id, isouter=True)
        .where(
            and_(
                transactions.c.tx_datetime >= datetime.combine(start, time.min),
                transactions.c.tx_datetime <= datetime.combine(end, time.max),
            )
        )
        .order_by(transactions.c.tx_datetime, predictions.c.transaction_id)
    )
    rows = connection.execute(query).mappings().all()
    columns = [TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, TX_AMOUNT, SCORE, LABEL]
    frame = pd.DataFrame(rows, columns=[*columns, "model_version", TX_FRAUD])
    frame[TX_DATETIME] = pd.to_datetime(frame[TX_DATETIME])
    frame[TX_FRAUD] = frame[TX_FRAUD].astype("float64")  # NaN: no label yet
    return frame


def business_totals(connection: Connection) -> BusinessTotals:
    """Running totals over every stored decision and label (monotonic while rows only grow)."""
    flagged = predictions.c.label == 1
    fraud = labels.c.tx_fraud == 1
    amount = transactions.c.tx_amount
    decisions = select(
        func.coalesce(func.sum(case((flagged, amount), else_=0.0)), 0.0),
        func.coalesce(func.sum(case((flagged & fraud, amount), else_=0.0)), 0.0),
        func.coalesce(func.sum(case((flagged & (labels.c.tx_fraud == 0), 1), else_=0)), 0),
    ).select_from(
        predictions.join(
            transactions, predictions.c.transaction_id == transactions.c.transaction_id
        ).join(labels, labels.c.transaction_id == predictions.c.transaction_id, isouter=True)
    )
    flagged_amount, prevented_loss, false_alarms = connection.execute(decisions).one()
    outcomes = select(
        func.coalesce(func.sum(case((fraud, 1), else_=0)), 0),
        func.coalesce(func.sum(case((labels.c.tx_fraud == 0, 1), else_=0)), 0),
    ).select_from(labels)
    labels_fraud, labels_legit = connection.execute(outcomes).one()
    return BusinessTotals(
        flagged_amount=float(flagged_amount),
        prevented_loss=float(prevented_loss),
        false_alarms=int(false_alarms),
        labels_fraud=int(labels_fraud),
        labels_legit=int(labels_legit),
    )
