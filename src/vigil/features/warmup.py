"""Warm an online state store from a dataset: what it would hold had it been live all along.

A Redis state store keeps nothing on disk, and a new layout (ADR 0010) starts empty, so a new
or restarted store needs the recent past before its features are right. Only the horizon
matters (longest window plus label delay): the transactions of that many days before
``until`` are recorded in event order, then the labels a live store would know by then
(transactions at least the label delay old) are applied, genuine ones included so that a
relabelled transaction ends right. Recording and labels are idempotent, so warming a store
that already holds part of that history is safe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd

from vigil.data import schema
from vigil.features.online import OnlineFeatureComputer
from vigil.features.replay import as_transactions, in_event_order

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
"""Called with the number of transactions or labels just processed."""


@dataclass(frozen=True)
class WarmupPlan:
    """What a warm-up will do: the window and how many transactions and labels it covers."""

    since: datetime
    until: datetime
    transactions: int
    labels: int


def _window(
    computer: OnlineFeatureComputer, frame: pd.DataFrame, until: datetime | None
) -> tuple[datetime, datetime, pd.DataFrame]:
    """The transactions within the store's horizon before ``until``, in event order."""
    times = frame[schema.TX_DATETIME]
    end = until or (times.max().to_pydatetime() + timedelta(microseconds=1))
    horizon = timedelta(microseconds=computer.spec.horizon_us)
    since = end - horizon
    return since, end, in_event_order(frame[(times > since) & (times < end)])


def _due_labels(
    computer: OnlineFeatureComputer, window: pd.DataFrame, until: datetime, pending: bool = False
) -> pd.DataFrame:
    """Labelled transactions old enough for their label to be known at ``until`` (every
    labelled one if ``pending``; none when the data carries no labels)."""
    if schema.TX_FRAUD not in window:
        return window.iloc[0:0].assign(**{schema.TX_FRAUD: pd.Series(dtype="int8")})
    if pending:
        return window
    delay = timedelta(days=computer.config.label_delay_days)
    return window[window[schema.TX_DATETIME] + delay <= until]


def plan_warmup(
    computer: OnlineFeatureComputer, frame: pd.DataFrame, until: datetime | None = None
) -> WarmupPlan:
    """The window and counts :func:`warm_state` would use (``until``: after the last row)."""
    since, end, window = _window(computer, frame, until)
    return WarmupPlan(since, end, len(window), len(_due_labels(computer, window, end)))


def warm_state(
    computer: OnlineFeatureComputer,
    frame: pd.DataFrame,
    until: datetime | None = None,
    batch_size: int = 512,
    progress: Progress | None = None,
    pending_labels: bool = False,
) -> WarmupPlan:
    """Record the horizon before ``until`` into ``computer``'s store, then its known labels.

    ``frame`` holds transactions with the schema's columns (``tx_fraud`` for labels; without
    it only transactions are recorded). ``pending_labels`` also applies the labels not yet due
    at ``until``, for a replay of the data that follows: features use a label only once its
    transaction is the label delay old, so this equals each label arriving on time.
    Returns what was done.
    """
    if batch_size <= 0:
        raise ValueError("batch_size must be > 0")
    since, end, window = _window(computer, frame, until)
    txs = as_transactions(window)
    for start in range(0, len(txs), batch_size):
        chunk = txs[start : start + batch_size]
        computer.features_for_batch(chunk)
        if progress is not None:
            progress(len(chunk))
    labels = _due_labels(computer, window, end, pending_labels)
    for i, c, t, ts, fraud in zip(
        labels[schema.TRANSACTION_ID],
        labels[schema.CUSTOMER_ID],
        labels[schema.TERMINAL_ID],
        labels[schema.TX_DATETIME],
        labels[schema.TX_FRAUD],
        strict=True,
    ):
        computer.add_label(int(i), int(c), int(t), ts.to_pydatetime(), bool(fraud))
        if progress is not None:
            progress(1)
    computer.store.mark_warm()  # /health reports "degraded" until this marker exists
    log.info("warmed the state store: %d transactions, %d labels", len(txs), len(labels))
    return WarmupPlan(since, end, len(txs), len(labels))
