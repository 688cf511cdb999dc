"""Each verdict row records the day of the case it was given for (``case_day``).

A card counts as reviewed on a day when a verdict was given for that day's case
(:mod:`vigil.cases.rule`). Until now the queue counted the verdict rows by their transaction's
day, so a verdict whose look-back labelled a card's transactions of earlier days made the card
"reviewed" on those days too: a past day's queue changed after the fact. The review time does
not tell the day either (a review at the day's end is at the next midnight; a past day's case
may be reviewed days later), so the row records it.

The rows already stored get the day of their verdict's newest transaction: the rows one
verdict wrote share the card, the review time and the analyst, and a verdict for a day writes
that day's unreviewed transactions and earlier ones only. Two exceptions get a day that is too
early or too late: a verdict that wrote only look-back rows (its day's transactions all had
verdicts already), and two verdicts of one card for different days given with the same review
time by the same analyst.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _day(column: str) -> str:
    """The day of a naive timestamp column, as a DATE value of the dialect."""
    if op.get_bind().dialect.name == "sqlite":
        return f"date({column})"
    return f"CAST({column} AS DATE)"


def upgrade() -> None:
    """Add ``case_day``, fill it for the stored rows, index the verdicts by it."""
    op.add_column("verdicts", sa.Column("case_day", sa.Date, nullable=True))
    op.execute(
        f"UPDATE verdicts SET case_day = (SELECT {_day('max(v.tx_datetime)')} FROM verdicts v "
        "WHERE v.customer_id = verdicts.customer_id AND v.reviewed_at = verdicts.reviewed_at "
        "AND v.analyst = verdicts.analyst)"
    )
    with op.batch_alter_table("verdicts") as batch:
        batch.alter_column("case_day", existing_type=sa.Date, nullable=False)
    op.create_index("ix_verdicts_case_day", "verdicts", ["case_day", "customer_id"])


def downgrade() -> None:
    """Back to revision 0007."""
    op.drop_index("ix_verdicts_case_day", "verdicts")
    with op.batch_alter_table("verdicts") as batch:
        batch.drop_column("case_day")
