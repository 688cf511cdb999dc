"""PostgreSQL: transactions and predictions partitioned by UTC day, ids kept unique apart.

``transactions`` becomes RANGE-partitioned on ``received_at``, ``predictions`` on
``created_at`` (see :mod:`vigil.storage.partitions`); existing rows move into a partition for
their day, partitions are created up to :data:`~vigil.storage.partitions.DAYS_AHEAD` days
ahead, and ``transaction_ids`` keeps every stored id unique. SQLite is left as it is.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

from datetime import timedelta

from alembic import op
from sqlalchemy import text

from vigil.storage.partitions import (
    DAYS_AHEAD,
    ID_INDEX,
    PARTITION_KEYS,
    default_partition,
    ensure_partitions,
    utc_today,
)

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_INDEXES = {"predictions": ("ix_predictions_created_at", "created_at")}


def _execute(sql: str) -> None:
    op.get_bind().execute(text(sql))


def _set_aside(table: str) -> str:
    """Rename ``table`` (and its index names, unique per schema) out of the way."""
    old = f"{table}_unpartitioned"
    _execute(f"ALTER TABLE {table} RENAME TO {old}")
    _execute(f"ALTER TABLE {old} RENAME CONSTRAINT {table}_pkey TO {old}_pkey")
    if table in _INDEXES:
        _execute(f"ALTER INDEX {_INDEXES[table][0]} RENAME TO {_INDEXES[table][0]}_old")
    return old


def _copy_back(table: str, old: str) -> None:
    columns = ", ".join(
        op.get_bind()
        .execute(
            text(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(:t) "
                "AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
            ),
            {"t": old},
        )
        .scalars()
    )
    _execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {old}")
    _execute(f"DROP TABLE {old}")


def upgrade() -> None:
    """Partition both tables by day and fill ``transaction_ids`` (PostgreSQL only)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    _execute(
        f"CREATE TABLE {ID_INDEX} (transaction_id BIGINT PRIMARY KEY, "
        "received_at TIMESTAMP WITH TIME ZONE NOT NULL)"
    )
    _execute(f"CREATE INDEX ix_{ID_INDEX}_received_at ON {ID_INDEX} (received_at)")
    _execute(f"INSERT INTO {ID_INDEX} SELECT transaction_id, received_at FROM transactions")
    _execute(
        f"INSERT INTO {ID_INDEX} SELECT transaction_id, created_at FROM predictions "
        "ON CONFLICT (transaction_id) DO NOTHING"
    )
    days = set()
    for table, key in PARTITION_KEYS.items():
        old = _set_aside(table)
        _execute(
            f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS) "
            f"PARTITION BY RANGE ({key})"
        )
        _execute(f"ALTER TABLE {table} ADD PRIMARY KEY (transaction_id, {key})")
        if table in _INDEXES:
            _execute(f"CREATE INDEX {_INDEXES[table][0]} ON {table} ({_INDEXES[table][1]})")
        _execute(f"CREATE TABLE {default_partition(table)} PARTITION OF {table} DEFAULT")
        days |= set(
            op.get_bind()
            .execute(text(f"SELECT DISTINCT ({key} AT TIME ZONE 'UTC')::date FROM {old}"))
            .scalars()
        )
    today = utc_today()
    days |= {today + timedelta(days=d) for d in range(DAYS_AHEAD + 1)}
    ensure_partitions(op.get_bind(), days)
    for table in PARTITION_KEYS:
        _copy_back(table, f"{table}_unpartitioned")


def downgrade() -> None:
    """Back to plain tables keyed on ``transaction_id`` (PostgreSQL only)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in PARTITION_KEYS:
        old = f"{table}_partitioned"
        _execute(f"ALTER TABLE {table} RENAME TO {old}")
        _execute(f"ALTER TABLE {old} RENAME CONSTRAINT {table}_pkey TO {old}_pkey")
        if table in _INDEXES:
            _execute(f"ALTER INDEX {_INDEXES[table][0]} RENAME TO {_INDEXES[table][0]}_old")
        _execute(f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        _execute(f"ALTER TABLE {table} ADD PRIMARY KEY (transaction_id)")
        if table in _INDEXES:
            _execute(f"CREATE INDEX {_INDEXES[table][0]} ON {table} ({_INDEXES[table][1]})")
        _copy_back(table, old)
    _execute(f"DROP TABLE {ID_INDEX}")
