"""The analysts' verdict log and the indexes the case queue reads by.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TRANSACTION_INDEXES = {
    "ix_transactions_tx_datetime": ["tx_datetime"],
    "ix_transactions_customer_tx_datetime": ["customer_id", "tx_datetime"],
    "ix_transactions_terminal_tx_datetime": ["terminal_id", "tx_datetime"],
}
_VERDICT_INDEXES = {
    "ix_verdicts_customer_reviewed_at": ["customer_id", "reviewed_at"],
    "ix_verdicts_terminal_reviewed_at": ["terminal_id", "reviewed_at"],
    "ix_verdicts_reviewed_at": ["reviewed_at"],
}


def upgrade() -> None:
    """Create ``verdicts`` and index transactions by day, card and terminal."""
    op.create_table(
        "verdicts",
        sa.Column("transaction_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("customer_id", sa.BigInteger, nullable=False),
        sa.Column("terminal_id", sa.BigInteger, nullable=False),
        sa.Column("tx_datetime", sa.DateTime, nullable=False),
        sa.Column("is_fraud", sa.SmallInteger, nullable=False),
        sa.Column("terminal_compromised", sa.SmallInteger, nullable=False),
        sa.Column("reviewed_at", sa.DateTime, nullable=False),
        sa.Column("analyst", sa.String(64), nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("is_fraud IN (0, 1)", name="ck_verdicts_is_fraud"),
        sa.CheckConstraint(
            "terminal_compromised IN (0, 1) AND terminal_compromised <= is_fraud",
            name="ck_verdicts_terminal_compromised",
        ),
    )
    for name, columns in _VERDICT_INDEXES.items():
        op.create_index(name, "verdicts", columns)
    for name, columns in _TRANSACTION_INDEXES.items():
        op.create_index(name, "transactions", columns)


def downgrade() -> None:
    """Drop the verdict log and the queue's indexes."""
    for name in _TRANSACTION_INDEXES:
        op.drop_index(name, "transactions")
    op.drop_table("verdicts")
