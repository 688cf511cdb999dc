"""The case queue's copy of ``transactions``, by event-time day (``case_transactions``).

``transactions`` takes every scored request and is indexed by event time only; the queue reads
a card's and a terminal's days, which want indexes by card and by terminal. Those indexes live
on the copy, so the scoring path's inserts never maintain them: the queue brings the days it
reads up to date first. A day is checked by counting its rows in ``transactions`` (an index
range, ~2 ms for 30,000 rows on SQLite) against ``case_days``; a day with more rows gets the
missing ones copied, one with fewer (retention dropped some) loses the rows no longer there.
Until a day has been checked, the copy holds what it held at its last check.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta

from sqlalchemy import Connection, delete, exists, func, select

from vigil.storage.repository import upsertable_insert
from vigil.storage.tables import case_days, case_transactions, transactions

_COPIED = (
    "transaction_id",
    "tx_datetime",
    "customer_id",
    "terminal_id",
    "tx_amount",
    "received_at",
)


def _bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time())
    return start, start + timedelta(days=1)


def _live_count(connection: Connection, day: date) -> int:
    start, end = _bounds(day)
    query = select(func.count()).where(
        transactions.c.tx_datetime >= start, transactions.c.tx_datetime < end
    )
    return int(connection.execute(query).scalar_one())


def _copy_missing(connection: Connection, day: date) -> int:
    """Copy the day's rows the copy lacks; how many were copied."""
    start, end = _bounds(day)
    copied = case_transactions.c.transaction_id == transactions.c.transaction_id
    rows = select(*(transactions.c[name] for name in _COPIED)).where(
        transactions.c.tx_datetime >= start,
        transactions.c.tx_datetime < end,
        ~exists().where(copied),
    )
    statement = (
        upsertable_insert(connection, case_transactions)
        .from_select(list(_COPIED), rows)
        .on_conflict_do_nothing(index_elements=["transaction_id"])
        .returning(case_transactions.c.transaction_id)
    )
    # counted from RETURNING: psycopg reports no rowcount for this INSERT ... SELECT
    return len(connection.execute(statement).all())


def _prune_removed(connection: Connection, day: date) -> int:
    """Remove the day's copied rows no longer in ``transactions``; how many were removed."""
    start, end = _bounds(day)
    stored = transactions.c.transaction_id == case_transactions.c.transaction_id
    statement = (
        delete(case_transactions)
        .where(
            case_transactions.c.tx_datetime >= start,
            case_transactions.c.tx_datetime < end,
            ~exists().where(stored),
        )
        .returning(case_transactions.c.transaction_id)
    )
    return len(connection.execute(statement).all())


def _add_count(connection: Connection, day: date, change: int) -> None:
    insert = upsertable_insert(connection, case_days).values(day=day, transactions=change)
    statement = insert.on_conflict_do_update(
        index_elements=["day"],
        set_={"transactions": case_days.c.transactions + insert.excluded.transactions},
    )
    connection.execute(statement)


def sync_days(connection: Connection, days: Iterable[date], recheck: Iterable[date] = ()) -> int:
    """Bring the copy of ``days`` up to date: the days never checked and those of ``recheck``
    (a day checked before keeps its copy otherwise). Returns the rows copied or removed.

    Concurrent calls are safe (a row is copied once; counts change by what each call did).
    """
    wanted = set(days) | set(recheck)
    if not wanted:
        return 0
    counted = dict(
        connection.execute(
            select(case_days.c.day, case_days.c.transactions).where(case_days.c.day.in_(wanted))
        ).all()
    )
    again = set(recheck)
    changed = 0
    for day in sorted(wanted):
        if day in counted and day not in again:
            continue
        copied, live = counted.get(day, 0), _live_count(connection, day)
        if live == copied and day in counted:
            continue
        # Fewer rows than copied: some were removed (the next check copies any added since).
        change = (
            -_prune_removed(connection, day) if live < copied else _copy_missing(connection, day)
        )
        _add_count(connection, day, change)
        changed += abs(change)
    return changed


def stored_days(connection: Connection) -> list[date]:
    """Every event-time day from the first stored transaction's to the last's."""
    # one aggregate a subquery: SQLite reads min() or max() off the index only when alone
    first, last = connection.execute(
        select(
            select(func.min(transactions.c.tx_datetime)).scalar_subquery(),
            select(func.max(transactions.c.tx_datetime)).scalar_subquery(),
        )
    ).one()
    if first is None or last is None:
        return []
    return days_between(first.date(), last.date())


def sync_stored_days(connection: Connection) -> int:
    """Bring the copy of every stored day up to the queue's freshness before a read of a
    card's whole history (the History page's card filter): the days never copied are copied
    and the newest day, the one still receiving transactions, is checked again; a day copied
    before keeps its copy (late transactions of an earlier day reach it when the queue's
    ranking refresh or a verdict checks that day). Returns the rows copied or removed.

    Checking every day would cost a count of each day's rows, more than reading them all
    (``benchmarks/bench_history.py``)."""
    days = stored_days(connection)
    return sync_days(connection, days, recheck=days[-1:])


def days_between(first: date, last: date) -> list[date]:
    """Every day from ``first`` to ``last``, both included."""
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]
