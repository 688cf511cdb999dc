"""Initial schema: transactions, predictions, labels, deployments, experiments.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create every table of the first schema."""
    op.create_table(
        "transactions",
        sa.Column("transaction_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("tx_datetime", sa.DateTime, nullable=False),
        sa.Column("customer_id", sa.BigInteger, nullable=False),
        sa.Column("terminal_id", sa.BigInteger, nullable=False),
        sa.Column("tx_amount", sa.Float, nullable=False),
        sa.Column("extra", sa.JSON, nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "predictions",
        sa.Column("transaction_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("label", sa.SmallInteger, nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("reason_codes", sa.JSON, nullable=False),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("challenger_score", sa.Float, nullable=True),
        sa.Column("challenger_version", sa.String(128), nullable=True),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("source IN ('api', 'stream', 'batch')", name="ck_predictions_source"),
    )
    op.create_index("ix_predictions_created_at", "predictions", ["created_at"])
    op.create_table(
        "labels",
        sa.Column("transaction_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("tx_fraud", sa.SmallInteger, nullable=False),
        sa.Column("labelled_at", sa.DateTime, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("model_path", sa.Text, nullable=False),
        sa.Column("deployed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("alias", sa.String(32), nullable=False),
        sa.Column("experiment_id", sa.Integer, nullable=True),
    )
    op.create_index("ix_deployments_alias_deployed_at", "deployments", ["alias", "deployed_at"])
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("metrics", sa.JSON, nullable=True),
        sa.Column("mlflow_run_id", sa.String(64), nullable=True),
        sa.Column("model_path", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'failed', 'finished')",
            name="ck_experiments_status",
        ),
    )


def downgrade() -> None:
    """Drop every table of the first schema."""
    for table in ("experiments", "deployments", "labels", "predictions", "transactions"):
        op.drop_table(table)
