"""Verdict labels for a retrain (issue 17 item 5): one definition, product and evaluation alike.

A retrain fits on its fitting period's rows with their delayed labels. With verdict labels it
also fits on the delay period's transactions (whose delayed label has not arrived yet) that
an analyst reviewed by the time of the retrain, each labelled by its verdict.

The sampling bias of reviewed cards: the reviewed rows are a selection on the serving
model's score, i.e. on the features, so the fraud rate given the features is unbiased where
the reviews reach, and they enter unweighted; the unreviewed transactions are left out, never
taken as genuine (that would be the real bias: most of the period's frauds are on cards no
one reviewed). Validation and early stopping stay on the delayed-label validation days.

The retrain job (:func:`vigil.training.challenger.train_challenger` with
``retrain.verdict_labels``) reads the ``verdicts`` table; ``vigil evaluate --feedback`` its
simulated investigator's log. Both select and label the rows here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from vigil.data import schema
from vigil.features.verdict_sql import verdict_log_frame
from vigil.features.verdicts import REVIEWED_AT, Verdict
from vigil.training.splits import Periods


def verdict_labelled_rows(rows: pd.DataFrame, log: pd.DataFrame, until: datetime) -> pd.DataFrame:
    """The rows of ``rows`` with a verdict in ``log`` reviewed at or before ``until``.

    Each keeps ``rows``' order and columns, its label replaced by its verdict (a label is
    final: a transaction's first verdict in the log's arrival order counts); rows without a
    verdict by then are left out.
    """
    known = log[log[REVIEWED_AT] <= pd.Timestamp(until)]
    first = known.drop_duplicates(schema.TRANSACTION_ID, keep="first")
    verdicts = pd.Series(
        first[schema.TX_FRAUD].to_numpy(), index=first[schema.TRANSACTION_ID].to_numpy()
    )
    picked = rows[rows[schema.TRANSACTION_ID].isin(verdicts.index)].copy()
    labels = verdicts.loc[picked[schema.TRANSACTION_ID].to_numpy()]
    picked[schema.TX_FRAUD] = labels.astype(rows[schema.TX_FRAUD].dtype).to_numpy()
    return picked


def delay_period_rows(frame: pd.DataFrame, periods: Periods) -> pd.DataFrame:
    """The rows of the delay period ``[delay_start, test_start)``: no delayed label yet."""
    days = frame[schema.TX_DATETIME].dt.date
    return frame[(days >= periods.delay_start) & (days < periods.test_start)]


def with_verdict_labels(
    fitting: pd.DataFrame, delay_rows: pd.DataFrame, log: pd.DataFrame, periods: Periods
) -> pd.DataFrame:
    """The fitting rows, then the delay period's rows reviewed by the retrain (the test
    period's start), labelled by their verdicts."""
    retrain_at = datetime.combine(periods.test_start, datetime.min.time())
    return pd.concat([fitting, verdict_labelled_rows(delay_rows, log, retrain_at)])


def stored_verdict_log(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """A verdict log frame from rows of the ``verdicts`` table (in review order)."""
    return verdict_log_frame(
        [
            Verdict(
                row["transaction_id"],
                row["customer_id"],
                row["terminal_id"],
                row["tx_datetime"],
                row["is_fraud"],
                row["terminal_compromised"],
                row["reviewed_at"],
            )
            for row in rows
        ]
    )
