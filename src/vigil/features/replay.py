"""Replay a labelled history through an online computer (state warm-up, parity tests)."""

from __future__ import annotations

import logging
from datetime import timedelta

import numpy as np
import pandas as pd

from vigil.data import schema
from vigil.features.online import OnlineFeatureComputer
from vigil.features.state import Label, Transaction
from vigil.features.verdicts import REVIEWED_AT, TERMINAL_COMPROMISED, Verdict

logger = logging.getLogger(__name__)


def in_event_order(transactions: pd.DataFrame) -> pd.DataFrame:
    """The frame sorted by ``(tx_datetime, transaction_id)``: the order the state store needs."""
    return transactions.sort_values([schema.TX_DATETIME, schema.TRANSACTION_ID])


def as_transactions(ordered: pd.DataFrame) -> list[Transaction]:
    """State-store inputs from a frame's rows, in the frame's order."""
    return [
        Transaction(int(i), ts.to_pydatetime(), int(c), int(t), float(a))
        for i, ts, c, t, a in zip(
            ordered[schema.TRANSACTION_ID],
            ordered[schema.TX_DATETIME],
            ordered[schema.CUSTOMER_ID],
            ordered[schema.TERMINAL_ID],
            ordered[schema.TX_AMOUNT],
            strict=True,
        )
    ]


def as_labels(frame: pd.DataFrame) -> list[Label]:
    """State-store labels (``tx_fraud`` of each transaction) from a frame's rows, in its order."""
    return [
        Label(int(i), int(c), int(t), ts.to_pydatetime(), bool(fraud))
        for i, c, t, ts, fraud in zip(
            frame[schema.TRANSACTION_ID],
            frame[schema.CUSTOMER_ID],
            frame[schema.TERMINAL_ID],
            frame[schema.TX_DATETIME],
            frame[schema.TX_FRAUD],
            strict=True,
        )
    ]


def as_verdicts(log: pd.DataFrame) -> list[Verdict]:
    """Verdicts from a verdict log frame (``vigil.features.verdicts.VERDICT_COLUMNS``), in order."""
    return [
        Verdict(int(i), int(c), int(t), ts.to_pydatetime(), bool(f), bool(m), r.to_pydatetime())
        for i, c, t, ts, f, m, r in zip(
            log[schema.TRANSACTION_ID],
            log[schema.CUSTOMER_ID],
            log[schema.TERMINAL_ID],
            log[schema.TX_DATETIME],
            log[schema.TX_FRAUD],
            log[TERMINAL_COMPROMISED],
            log[REVIEWED_AT],
            strict=True,
        )
    ]


def replay(
    computer: OnlineFeatureComputer,
    transactions: pd.DataFrame,
    verdicts: pd.DataFrame | None = None,
) -> np.ndarray:
    """Features of every transaction in ``(tx_datetime, transaction_id)`` order.

    Each transaction's label (``tx_fraud``, when present) is fed once the stream reaches its
    time plus the label delay, as a chargeback would arrive in production; each verdict of
    the ``verdicts`` log before the first transaction after its ``reviewed_at`` (log order for
    ties).
    """
    ordered = in_event_order(transactions)
    txs = as_transactions(ordered)
    frauds = ordered[schema.TX_FRAUD].to_numpy() if schema.TX_FRAUD in ordered else None
    delay = timedelta(days=computer.config.label_delay_days)
    due_verdicts: list[Verdict] = []
    if verdicts is not None:
        by_review = verdicts.assign(_order=range(len(verdicts)))
        due_verdicts = as_verdicts(by_review.sort_values([REVIEWED_AT, "_order"]))
    rows, labelled, reviewed = [], 0, 0
    for tx in txs:
        fed = reviewed
        while reviewed < len(due_verdicts) and due_verdicts[reviewed].reviewed_at < tx.tx_datetime:
            reviewed += 1
        computer.add_verdicts(due_verdicts[fed:reviewed])
        while frauds is not None and labelled < len(txs):
            due = txs[labelled]
            if due.tx_datetime + delay > tx.tx_datetime:
                break
            computer.add_label(
                due.transaction_id,
                due.customer_id,
                due.terminal_id,
                due.tx_datetime,
                bool(frauds[labelled]),
            )
            labelled += 1
        rows.append(computer.features_for(tx))
    logger.info("replayed %d transactions, fed %d labels", len(txs), labelled)
    return np.vstack(rows) if rows else np.empty((0, len(computer.names)), computer.dtype)
