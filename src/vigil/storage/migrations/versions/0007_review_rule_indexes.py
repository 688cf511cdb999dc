"""Indexes for the review rule's anti-joins: the fraud labels by arrival, verdicts by event day.

The day's queue leaves out the cards known compromised at the day's start (a fraud label or
verdict of the ``cases.block_days`` before) and the cards already reviewed that day
(:mod:`vigil.cases.rule`, :func:`vigil.storage.cases.top_cards`): the fraud labels are found by
``labelled_at`` from a partial index of the frauds, the verdicts of the day by
``tx_datetime``. The day's transactions are read by ``ix_transactions_tx_datetime`` (0001).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_FRAUDS = sa.text("tx_fraud = 1")


def upgrade() -> None:
    """The fraud labels by arrival time; the verdicts by their transactions' time."""
    op.create_index(
        "ix_labels_frauds_labelled_at",
        "labels",
        ["labelled_at", "transaction_id"],
        sqlite_where=_FRAUDS,
        postgresql_where=_FRAUDS,
    )
    op.create_index("ix_verdicts_tx_datetime", "verdicts", ["tx_datetime", "customer_id"])


def downgrade() -> None:
    """Back to revision 0006."""
    op.drop_index("ix_verdicts_tx_datetime", "verdicts")
    op.drop_index("ix_labels_frauds_labelled_at", "labels")
