"""Day partitions of ``transactions`` and ``predictions`` on PostgreSQL, and their retention.

On PostgreSQL (migration 0002) ``transactions`` is RANGE-partitioned by UTC day on
``received_at`` and ``predictions`` on ``created_at``: one table ``<table>_pYYYYMMDD`` per day
plus a ``<table>_default`` partition that catches any row whose day has no partition yet, so
a write never fails because maintenance ran late. :func:`ensure_partitions` creates the days
ahead (moving rows the default partition holds for a new day into it);
:func:`drop_partitions_before` is the retention: whole days go with ``DROP TABLE``, no
``DELETE`` of billions of rows.

A partitioned table's unique keys must include the partition key, so ``transaction_id`` alone
cannot be unique on them. The plain table ``transaction_ids`` (``transaction_id`` primary key)
keeps it unique: the group commit (:mod:`vigil.storage.pg_insert`) claims an id there first and
writes the two rows only for ids it claimed. Retention deletes the ids of the dropped days,
so the window in which a repeated id is recognised is the retention window.

SQLite keeps the plain tables of migration 0001: nothing here runs there.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection, Engine, text

log = logging.getLogger(__name__)

PARTITION_KEYS: dict[str, str] = {"transactions": "received_at", "predictions": "created_at"}
"""Each day-partitioned table and the UTC timestamp column its partitions are ranges of."""

ID_INDEX = "transaction_ids"
"""The plain table that keeps ``transaction_id`` unique across all partitions."""

DAYS_AHEAD = 7
"""Days after today that the migration creates partitions for (then ``vigil db maintain``)."""

_DAY_SUFFIX = re.compile(r"_p(\d{8})$")


def is_partitioned(connection: Connection) -> bool:
    """Whether this database keeps ``transactions`` in day partitions (PostgreSQL, 0002+)."""
    if connection.dialect.name != "postgresql":
        return False
    found = connection.execute(
        text(
            "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table "
            "WHERE partrelid = to_regclass('transactions'))"
        )
    ).scalar_one()
    return bool(found)


def partition_name(table: str, day: date) -> str:
    """``transactions_p20261204``: the partition holding ``table``'s rows of ``day``."""
    return f"{table}_p{day:%Y%m%d}"


def default_partition(table: str) -> str:
    """The partition catching rows whose day has no partition of its own."""
    return f"{table}_default"


def schema_object_excluded(name: str | None) -> bool:
    """Tables Alembic's comparison with :mod:`~vigil.storage.tables` leaves out (PostgreSQL's
    partitions and id index are storage detail, not part of the declared schema)."""
    if name is None:
        return False
    if name == ID_INDEX:
        return True
    return any(
        name == default_partition(table) or (name.startswith(f"{table}_p") and _day_of(name))
        for table in PARTITION_KEYS
    )


def include_name(name: str | None, type_: str, _parent_names: object) -> bool:
    """Alembic ``include_name`` hook built on :func:`schema_object_excluded`."""
    return not (type_ == "table" and schema_object_excluded(name))


def _day_of(name: str) -> date | None:
    match = _DAY_SUFFIX.search(name)
    return datetime.strptime(match.group(1), "%Y%m%d").date() if match else None


def _bound(day: date) -> str:
    """The UTC midnight starting ``day`` as a timestamptz literal."""
    return f"'{day.isoformat()} 00:00:00+00'"


def _in_day(column: str, day: date) -> str:
    return f"{column} >= {_bound(day)} AND {column} < {_bound(day + timedelta(days=1))}"


def day_partitions(connection: Connection, table: str) -> dict[date, str]:
    """The day partitions of ``table`` by day (the default partition left out)."""
    names = connection.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:table)"
        ),
        {"table": table},
    ).scalars()
    days = {_day_of(name): name for name in names}
    return {day: name for day, name in days.items() if day is not None}


def create_day_partition(connection: Connection, table: str, day: date) -> bool:
    """Create ``table``'s partition for ``day`` unless it exists; True if it was created.

    Rows the default partition already holds for that day move into the new partition in the
    same transaction (PostgreSQL refuses a partition whose rows sit in the default one).
    """
    name = partition_name(table, day)
    if day in day_partitions(connection, table):
        return False
    key, default = PARTITION_KEYS[table], default_partition(table)
    in_day = _in_day(key, day)
    stranded = connection.execute(
        text(f"SELECT EXISTS (SELECT 1 FROM {default} WHERE {in_day})")
    ).scalar_one()
    if stranded:
        stash = f"{name}_stash"
        connection.execute(
            text(
                f"CREATE TEMPORARY TABLE {stash} ON COMMIT DROP AS "
                f"SELECT * FROM {default} WHERE {in_day}"
            )
        )
        connection.execute(text(f"DELETE FROM {default} WHERE {in_day}"))
    bounds = f"FROM ({_bound(day)}) TO ({_bound(day + timedelta(days=1))})"
    connection.execute(text(f"CREATE TABLE {name} PARTITION OF {table} FOR VALUES {bounds}"))
    if stranded:
        connection.execute(text(f"INSERT INTO {table} SELECT * FROM {stash}"))
        log.info("moved %s rows of %s out of %s", table, day, default)
    return True


def ensure_partitions(connection: Connection, days: Iterable[date]) -> list[str]:
    """Create the missing partitions of every partitioned table for ``days``; their names."""
    created = []
    for day in sorted(set(days)):
        for table in PARTITION_KEYS:
            if create_day_partition(connection, table, day):
                created.append(partition_name(table, day))
    return created


def drop_partitions_before(connection: Connection, cutoff: date) -> list[str]:
    """Retention: drop every day partition of a day before ``cutoff``, delete such rows from
    the default partitions and forget their ids in :data:`ID_INDEX` and the case queue's copy;
    the dropped names."""
    dropped = []
    for table, key in PARTITION_KEYS.items():
        for day, name in sorted(day_partitions(connection, table).items()):
            if day < cutoff:
                connection.execute(text(f"DROP TABLE {name}"))
                dropped.append(name)
        connection.execute(
            text(f"DELETE FROM {default_partition(table)} WHERE {key} < {_bound(cutoff)}")
        )
    _forget_ids_before(connection, cutoff)
    return dropped


def _forget_ids_before(connection: Connection, cutoff: date) -> None:
    """Forget the ids received before ``cutoff`` in :data:`ID_INDEX`, and the case queue's copy
    (:mod:`vigil.storage.case_copy`) of those transactions: the copied rows go by primary key
    and their days' counts in ``case_days`` drop by as many (a day left with none is forgotten,
    so the queue checks it afresh). Only what retention removed is read, not the whole copy;
    the other days' counts stay as the queue's checks left them."""
    removed = connection.execute(
        text(
            f"WITH forgotten AS (DELETE FROM {ID_INDEX} WHERE received_at < {_bound(cutoff)} "
            "RETURNING transaction_id), "
            "gone AS (DELETE FROM case_transactions c USING forgotten f "
            "WHERE c.transaction_id = f.transaction_id "
            "RETURNING CAST(c.tx_datetime AS DATE) AS day), "
            "per_day AS (SELECT day, count(*) AS n FROM gone GROUP BY day) "
            "UPDATE case_days d SET transactions = d.transactions - p.n FROM per_day p "
            "WHERE d.day = p.day RETURNING d.day, d.transactions"
        )
    ).all()
    emptied = [day for day, left in removed if left <= 0]
    if emptied:
        # a statement of its own: a concurrent count change is seen before the row goes
        connection.execute(
            text("DELETE FROM case_days WHERE day = ANY(:days) AND transactions <= 0"),
            {"days": emptied},
        )


@dataclass(frozen=True)
class MaintenanceReport:
    """What :func:`maintain_partitions` did."""

    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    partitioned: bool = True


def utc_today() -> date:
    """Today's date in UTC (the partitions' days are UTC days)."""
    return datetime.now(UTC).date()


def maintain_partitions(
    engine: Engine, days_ahead: int, retention_days: int | None, today: date | None = None
) -> MaintenanceReport:
    """Create partitions from today to ``days_ahead`` days on, drop those older than
    ``retention_days`` (None keeps everything); a no-op report on unpartitioned databases."""
    if days_ahead < 0 or (retention_days is not None and retention_days < 1):
        raise ValueError("days_ahead must be >= 0 and retention_days >= 1")
    today = today or utc_today()
    with engine.begin() as connection:
        if not is_partitioned(connection):
            return MaintenanceReport(partitioned=False)
        created = ensure_partitions(
            connection, (today + timedelta(days=d) for d in range(days_ahead + 1))
        )
        dropped = (
            []
            if retention_days is None
            else drop_partitions_before(connection, today - timedelta(days=retention_days))
        )
    log.info("partitions created %s, dropped %s", created, dropped)
    return MaintenanceReport(created, dropped)
