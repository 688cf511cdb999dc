"""The labels by receipt time: the state recovery's tail re-warm reads them by range.

After a Redis restart the recovery re-records the transactions and the labels received since
shortly before the old servers were last seen (:func:`vigil.features.warmup.received_transactions`).
The transactions' half reads the day partitions from then on (0002); the labels' half scanned
the whole ``labels`` table, which grows with every transaction ever labelled. A label is final
(stored once, never updated), so its entry is appended at the index's right edge.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Index the labels by ``received_at``."""
    op.create_index("ix_labels_received_at", "labels", ["received_at"])


def downgrade() -> None:
    """Back to revision 0008."""
    op.drop_index("ix_labels_received_at", "labels")
