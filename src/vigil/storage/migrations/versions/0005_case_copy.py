"""The case queue reads its own copy of transactions: no card or terminal index on the hot table.

Every scored request inserts a ``transactions`` row; the two indexes of revision 0004 (by card,
by terminal) cost ``POST /predict`` about 5 % of its throughput (docs/benchmarks.md). They move
to ``case_transactions``, a copy the case queue fills by event-time day when it reads a day
(``vigil.storage.case_copy``), counted per day in ``case_days``. The copy starts with every
stored transaction, so an upgraded database answers its first queue read without copying.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_MOVED = {
    "customer_day_amount": ["customer_id", "tx_datetime", "tx_amount"],
    "terminal_day_id": ["terminal_id", "tx_datetime", "transaction_id"],
}
_COPIED = "transaction_id, tx_datetime, customer_id, terminal_id, tx_amount, received_at"


def _day(column: str) -> str:
    """The event-time day of a naive timestamp column, as a DATE value of the dialect."""
    if op.get_bind().dialect.name == "sqlite":
        return f"date({column})"
    return f"CAST({column} AS DATE)"


def upgrade() -> None:
    """Create the queue's copy with the card and terminal indexes, fill it, drop them from
    ``transactions``."""
    op.create_table(
        "case_transactions",
        sa.Column("transaction_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("tx_datetime", sa.DateTime, nullable=False),
        sa.Column("customer_id", sa.BigInteger, nullable=False),
        sa.Column("terminal_id", sa.BigInteger, nullable=False),
        sa.Column("tx_amount", sa.Float, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "case_days",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("transactions", sa.Integer, nullable=False),
    )
    op.execute(f"INSERT INTO case_transactions ({_COPIED}) SELECT {_COPIED} FROM transactions")
    op.execute(
        f"INSERT INTO case_days (day, transactions) SELECT {_day('tx_datetime')}, count(*) "
        f"FROM case_transactions GROUP BY {_day('tx_datetime')}"
    )
    for name, columns in _MOVED.items():
        op.create_index(f"ix_case_transactions_{name}", "case_transactions", columns)
        op.drop_index(f"ix_transactions_{name}", "transactions")


def downgrade() -> None:
    """Back to revision 0004: the indexes on ``transactions``, no copy."""
    for name, columns in _MOVED.items():
        op.create_index(f"ix_transactions_{name}", "transactions", columns)
    op.drop_table("case_days")
    op.drop_table("case_transactions")
