"""PostgreSQL: the receipt-time index of ``transaction_ids`` becomes a BRIN index.

Only retention reads it (``DELETE FROM transaction_ids WHERE received_at < cutoff``, once a day,
:func:`vigil.storage.partitions.drop_partitions_before`), yet as a B-tree every stored decision
inserted an entry into it. Ids are claimed in receipt order, so the table's blocks follow
``received_at`` and a block-range index answers the same range: its entries are made when a
range is summarised (vacuum), not per row. Server instructions per stored record, 1.0 % fewer
(``callgrind``, docs/benchmarks.md, 2026-12-06). SQLite has no such table.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

from vigil.storage.partitions import ID_INDEX

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_INDEX = f"ix_{ID_INDEX}_received_at"


def _recreate(method: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP INDEX {_INDEX}")
    op.execute(f"CREATE INDEX {_INDEX} ON {ID_INDEX} USING {method} (received_at)")


def upgrade() -> None:
    """The receipt-time index as BRIN (PostgreSQL only)."""
    _recreate("brin")


def downgrade() -> None:
    """Back to the B-tree of revision 0002 (PostgreSQL only)."""
    _recreate("btree")
