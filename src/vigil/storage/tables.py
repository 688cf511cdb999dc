"""SQLAlchemy Core tables: the one declaration of Vigil's relational schema.

Alembic migrations in ``migrations/versions`` create these; a test checks they agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
    text,
)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite keeps no offset of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        """Store UTC; naive values are taken to be UTC already."""
        if value is None or value.tzinfo is None:
            return value
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        """Return an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData()


def _transaction_columns(*extra: Column[Any]) -> list[Column[Any]]:
    """The transaction contract's columns, then ``extra``, then ``received_at``
    (``transactions`` and the case queue's copy declare the same)."""
    return [
        Column("transaction_id", BigInteger, primary_key=True, autoincrement=False),
        Column("tx_datetime", DateTime, nullable=False),
        Column("customer_id", BigInteger, nullable=False),
        Column("terminal_id", BigInteger, nullable=False),
        Column("tx_amount", Float, nullable=False),
        *extra,
        Column("received_at", UtcDateTime, nullable=False),
    ]


transactions = Table(
    "transactions",
    metadata,
    *_transaction_columns(Column("extra", JSON, nullable=True)),
    # Event-time days: the case queue ranks a day and copies it (``case_transactions``) by
    # this index, and the event clock is its last entry. No index by card or terminal: every
    # scored request would pay for it (``case_transactions`` carries those, off that path).
    Index("ix_transactions_tx_datetime", "tx_datetime"),
)

# No foreign key to transactions: the writer inserts both in one transaction anyway and a
# constraint check per row would only slow the hot path down.
predictions = Table(
    "predictions",
    metadata,
    Column("transaction_id", BigInteger, primary_key=True, autoincrement=False),
    Column("score", Float, nullable=False),
    Column("label", SmallInteger, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("reason_codes", JSON, nullable=False),
    Column("model_version", String(128), nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("challenger_score", Float, nullable=True),
    Column("challenger_version", String(128), nullable=True),
    Column("source", String(8), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("source IN ('api', 'stream', 'batch')", name="ck_predictions_source"),
    Index("ix_predictions_created_at", "created_at"),
)

labels = Table(
    "labels",
    metadata,
    Column("transaction_id", BigInteger, primary_key=True, autoincrement=False),
    Column("tx_fraud", SmallInteger, nullable=False),
    Column("labelled_at", DateTime, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    # The known frauds alone (about 1% of labels): a terminal's fraud run probes only these.
    Index(
        "ix_labels_frauds",
        "transaction_id",
        sqlite_where=text("tx_fraud = 1"),
        postgresql_where=text("tx_fraud = 1"),
    ),
    # ... and by arrival: the queue leaves out the cards with a fraud known lately (0007)
    Index(
        "ix_labels_frauds_labelled_at",
        "labelled_at",
        "transaction_id",
        sqlite_where=text("tx_fraud = 1"),
        postgresql_where=text("tx_fraud = 1"),
    ),
    # ... all of them by receipt: the state recovery re-reads those received lately (0009)
    Index("ix_labels_received_at", "received_at"),
)

# The analysts' verdict log: one row per reviewed transaction (a card's verdict covers its
# transactions of the day and its unlabelled look-back). ``reviewed_at`` is on the
# transactions' clock (naive UTC), so features at time t use the verdicts reviewed by t,
# offline and online alike; ``case_day`` is the day of the case the verdict was given for
# (the card is reviewed on that day's queue, whatever day its look-back rows are of, 0008).
# Each verdict is also a row of ``labels`` (the one label path, ``vigil.decisions.labels``).
verdicts = Table(
    "verdicts",
    metadata,
    Column("transaction_id", BigInteger, primary_key=True, autoincrement=False),
    Column("customer_id", BigInteger, nullable=False),
    Column("terminal_id", BigInteger, nullable=False),
    Column("tx_datetime", DateTime, nullable=False),
    Column("is_fraud", SmallInteger, nullable=False),
    Column("terminal_compromised", SmallInteger, nullable=False),
    Column("reviewed_at", DateTime, nullable=False),
    Column("analyst", String(64), nullable=False),
    Column("note", Text, nullable=True),
    Column("received_at", UtcDateTime, nullable=False),
    Column("case_day", Date, nullable=False),
    CheckConstraint("is_fraud IN (0, 1)", name="ck_verdicts_is_fraud"),
    CheckConstraint(
        "terminal_compromised IN (0, 1) AND terminal_compromised <= is_fraud",
        name="ck_verdicts_terminal_compromised",
    ),
    Index("ix_verdicts_customer_reviewed_at", "customer_id", "reviewed_at"),
    Index("ix_verdicts_terminal_reviewed_at", "terminal_id", "reviewed_at"),
    Index("ix_verdicts_reviewed_at", "reviewed_at"),
    Index("ix_verdicts_tx_datetime", "tx_datetime", "customer_id"),  # delayed labels falling due
    Index("ix_verdicts_case_day", "case_day", "customer_id"),  # the cards reviewed on a day
)

# The case queue's copy of ``transactions`` (without ``extra``), indexed by card and terminal:
# a card's days with their amounts (its habit, its look-back), a terminal's days with their ids
# (its fraud run) are read from the indexes alone. The queue copies an event-time day when it
# reads it (``vigil.storage.case_copy``), so the inserts of the scoring path maintain no such
# index. ``case_days`` counts the rows copied per day: a day whose count in ``transactions``
# differs is copied again (rows added) or pruned (rows removed by retention).
case_transactions = Table(
    "case_transactions",
    metadata,
    *_transaction_columns(),
    Index("ix_case_transactions_customer_day_amount", "customer_id", "tx_datetime", "tx_amount"),
    Index("ix_case_transactions_terminal_day_id", "terminal_id", "tx_datetime", "transaction_id"),
)

case_days = Table(
    "case_days",
    metadata,
    Column("day", Date, primary_key=True),
    Column("transactions", Integer, nullable=False),
)

deployments = Table(
    "deployments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_version", String(128), nullable=False),
    Column("model_path", Text, nullable=False),
    Column("deployed_at", UtcDateTime, nullable=False),
    Column("alias", String(32), nullable=False),
    Column("experiment_id", Integer, nullable=True),
    Index("ix_deployments_alias_deployed_at", "alias", "deployed_at"),
)

experiments = Table(
    "experiments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime, nullable=True),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("metrics", JSON, nullable=True),
    Column("mlflow_run_id", String(64), nullable=True),
    Column("model_path", Text, nullable=True),
    Column("error", Text, nullable=True),
    CheckConstraint(
        "status IN ('queued', 'running', 'failed', 'finished')", name="ck_experiments_status"
    ),
)
