"""The case queue's reads and the verdict log's writes (SQLite or PostgreSQL).

Days are event-time days: ``[start, end)`` on ``transactions.tx_datetime`` (naive UTC). A
day's ranking reads ``transactions`` by that time; a card's and a terminal's transactions are
read from the queue's copy, ``case_transactions``, which the caller brings up to date for the
days it reads first (:func:`vigil.storage.case_copy.sync_days`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BindParameter,
    CompoundSelect,
    Connection,
    Select,
    bindparam,
    case,
    func,
    literal_column,
    select,
    union,
)
from sqlalchemy.sql.elements import ColumnElement

from vigil.storage.records import utc_now
from vigil.storage.repository import upsertable_insert
from vigil.storage.tables import case_transactions, labels, predictions, transactions, verdicts


@dataclass(frozen=True, slots=True)
class VerdictRecord:
    """One reviewed transaction of the verdict log (``reviewed_at`` on the event clock;
    ``case_day``: the day of the case the verdict was given for, the queue it reviewed)."""

    transaction_id: int
    customer_id: int
    terminal_id: int
    tx_datetime: datetime
    is_fraud: bool
    terminal_compromised: bool
    reviewed_at: datetime
    analyst: str
    case_day: date
    note: str | None = None
    received_at: datetime = field(default_factory=utc_now)

    def row(self) -> dict[str, Any]:
        """Values for the ``verdicts`` table."""
        values = asdict(self)
        values["is_fraud"] = int(self.is_fraud)
        values["terminal_compromised"] = int(self.terminal_compromised)
        return values


def logged_verdict(row: dict[str, Any]) -> VerdictRecord:
    """The verdict of a :func:`card_transactions` row that has one."""
    return VerdictRecord(
        transaction_id=int(row["transaction_id"]),
        customer_id=int(row["customer_id"]),
        terminal_id=int(row["terminal_id"]),
        tx_datetime=row["tx_datetime"],
        is_fraud=bool(row["is_fraud"]),
        terminal_compromised=bool(row["terminal_compromised"]),
        reviewed_at=row["reviewed_at"],
        analyst=str(row["analyst"]),
        case_day=row["case_day"],
        note=row["note"],
        received_at=row["verdict_received_at"],
    )


def newest_event_time(connection: Connection) -> datetime | None:
    """The latest stored transaction time (the event clock), or None with no transactions."""
    value = connection.execute(select(func.max(transactions.c.tx_datetime))).scalar_one()
    return value if isinstance(value, datetime) else None


def blocked_cards(after: datetime, until: datetime, delay: timedelta) -> CompoundSelect:
    """The cards with a fraud known in ``(after, until]`` (:mod:`vigil.cases.rule`): a fraud
    verdict reviewed then, a fraud label arrived then, a fraud verdict whose delayed label
    (transaction time + ``delay``) fell due then (a query)."""
    fraud: ColumnElement[int] = literal_column("1")  # a literal: the partial indexes apply
    reviewed = select(verdicts.c.customer_id).where(
        verdicts.c.is_fraud == fraud,
        verdicts.c.reviewed_at > after,
        verdicts.c.reviewed_at <= until,
    )
    due = select(verdicts.c.customer_id).where(
        verdicts.c.is_fraud == fraud,
        verdicts.c.tx_datetime > after - delay,
        verdicts.c.tx_datetime <= until - delay,
        verdicts.c.reviewed_at <= until,
    )
    labelled = (
        select(transactions.c.customer_id)
        .join(labels, labels.c.transaction_id == transactions.c.transaction_id)
        .where(
            labels.c.tx_fraud == fraud, labels.c.labelled_at > after, labels.c.labelled_at <= until
        )
    )
    return union(reviewed, due, labelled)


def reviewed_cards(day: date) -> Select[Any]:
    """The cards reviewed on ``day`` (:mod:`vigil.cases.rule`): given a verdict for their case
    of that day, not those whose transactions of the day a later day's look-back labelled."""
    return select(verdicts.c.customer_id).where(verdicts.c.case_day == day).distinct()


def _constants(name: str, values: Sequence[int]) -> BindParameter[Any]:
    """``values`` written into the statement: a prepared statement's generic plan for a list
    of parameters would not hash them."""
    return bindparam(name, list(values), expanding=True, literal_execute=True)


def top_cards(
    connection: Connection,
    start: datetime,
    end: datetime,
    limit: int,
    block: tuple[datetime, datetime],
    delay: timedelta,
) -> list[tuple[int, float]]:
    """The day ``[start, end)``'s queue (:mod:`vigil.cases.rule`): (customer, top score), best
    first: the cards reviewed that day (given a verdict for ``start``'s day), then the best
    cards neither reviewed nor blocked (a fraud known in ``block`` ``(after, until]``,
    ``delay`` the label delay) up to ``limit`` cards in all.

    The reviewed and blocked cards (a few hundred) are read first and the day's scored
    transactions are ranked once with them as constant lists: a subquery there would keep
    PostgreSQL from scanning the day in parallel. Ties are broken by customer id, so the queue
    is the same on every call.
    """
    reviewed = sorted(
        {int(card) for card in connection.execute(reviewed_cards(start.date())).scalars()}
    )
    known = {int(card) for card in connection.execute(blocked_cards(*block, delay)).scalars()}
    blocked = sorted(known.difference(reviewed))
    customer = transactions.c.customer_id
    top = func.max(predictions.c.score).label("top")
    query = (
        select(customer, top)
        .join(predictions, predictions.c.transaction_id == transactions.c.transaction_id)
        .where(
            transactions.c.tx_datetime >= start,
            transactions.c.tx_datetime < end,
            customer.not_in(_constants("blocked", blocked)),
        )
        .group_by(customer)
        # the reviewed cards first, then the limit: they keep their places
        .order_by(
            case((customer.in_(_constants("reviewed", reviewed)), 1), else_=0).desc(),
            top.desc(),
            customer,
        )
        .limit(max(limit, len(reviewed)))
    )
    cards = [(int(card), float(score)) for card, score in connection.execute(query)]
    return sorted(cards, key=lambda card: (-card[1], card[0]))


def card_transactions(
    connection: Connection,
    customer_ids: Sequence[int],
    start: datetime,
    end: datetime,
    unlabelled: bool = False,
) -> list[dict[str, Any]]:
    """The cards' scored transactions in ``[start, end)`` with any verdict, in time order;
    ``unlabelled``: only those with neither a label nor a verdict."""
    query = (
        select(
            case_transactions.c.transaction_id,
            case_transactions.c.customer_id,
            case_transactions.c.terminal_id,
            case_transactions.c.tx_datetime,
            case_transactions.c.tx_amount,
            case_transactions.c.received_at,
            predictions.c.score,
            predictions.c.label,
            predictions.c.reason_codes,
            predictions.c.model_version,
            verdicts.c.is_fraud,
            verdicts.c.terminal_compromised,
            verdicts.c.reviewed_at,
            verdicts.c.analyst,
            verdicts.c.case_day,
            verdicts.c.note,
            verdicts.c.received_at.label("verdict_received_at"),
        )
        .join(predictions, predictions.c.transaction_id == case_transactions.c.transaction_id)
        .join(
            verdicts,
            verdicts.c.transaction_id == case_transactions.c.transaction_id,
            isouter=True,
        )
        .where(
            case_transactions.c.customer_id.in_(list(customer_ids)),
            case_transactions.c.tx_datetime >= start,
            case_transactions.c.tx_datetime < end,
        )
        .order_by(case_transactions.c.tx_datetime, case_transactions.c.transaction_id)
    )
    if unlabelled:
        query = query.join(
            labels, labels.c.transaction_id == case_transactions.c.transaction_id, isouter=True
        ).where(labels.c.transaction_id.is_(None), verdicts.c.transaction_id.is_(None))
    return [dict(row) for row in connection.execute(query).mappings()]


def card_habits(
    connection: Connection, customer_ids: Sequence[int], start: datetime, end: datetime
) -> dict[int, tuple[float, int]]:
    """Each card's mean amount and transaction count in ``[start, end)`` (its habit)."""
    query = (
        select(
            case_transactions.c.customer_id,
            func.avg(case_transactions.c.tx_amount),
            func.count(),
        )
        .where(
            case_transactions.c.customer_id.in_(list(customer_ids)),
            case_transactions.c.tx_datetime >= start,
            case_transactions.c.tx_datetime < end,
        )
        .group_by(case_transactions.c.customer_id)
    )
    return {int(c): (float(mean), int(n)) for c, mean, n in connection.execute(query)}


def terminal_fraud_times(
    connection: Connection, terminal_ids: Sequence[int], start: datetime, end: datetime
) -> dict[int, list[datetime]]:
    """Event times of the known frauds (labels, verdicts included) at each terminal."""
    query = (
        select(case_transactions.c.terminal_id, case_transactions.c.tx_datetime)
        .join(labels, labels.c.transaction_id == case_transactions.c.transaction_id)
        .where(
            case_transactions.c.terminal_id.in_(list(terminal_ids)),
            case_transactions.c.tx_datetime >= start,
            case_transactions.c.tx_datetime < end,
            labels.c.tx_fraud == literal_column("1"),  # a literal: ix_labels_frauds applies
        )
    )
    times: dict[int, list[datetime]] = {}
    for terminal, moment in connection.execute(query):
        times.setdefault(int(terminal), []).append(moment)
    return times


def compromised_terminals(
    connection: Connection, terminal_ids: Sequence[int], until: datetime
) -> set[int]:
    """The terminals an analyst marked compromised in a verdict reviewed by ``until``."""
    query = (
        select(verdicts.c.terminal_id)
        .where(
            verdicts.c.terminal_id.in_(list(terminal_ids)),
            verdicts.c.terminal_compromised == 1,
            verdicts.c.reviewed_at <= until,
        )
        .distinct()
    )
    return {int(terminal) for terminal in connection.execute(query).scalars()}


def insert_verdicts(connection: Connection, records: Sequence[VerdictRecord]) -> list[int]:
    """Store verdicts; a transaction keeps its first one. Returns the ids stored now."""
    if not records:
        return []
    statement = (
        upsertable_insert(connection, verdicts)
        .on_conflict_do_nothing(index_elements=["transaction_id"])
        .returning(verdicts.c.transaction_id)
    )
    return [
        int(row.transaction_id) for row in connection.execute(statement, [r.row() for r in records])
    ]


def fetch_verdicts(
    connection: Connection, since: datetime | None = None, until: datetime | None = None
) -> list[dict[str, Any]]:
    """The verdict log in review order, optionally ``since <= reviewed_at < until``."""
    query = select(verdicts).order_by(verdicts.c.reviewed_at, verdicts.c.transaction_id)
    if since is not None:
        query = query.where(verdicts.c.reviewed_at >= since)
    if until is not None:
        query = query.where(verdicts.c.reviewed_at < until)
    return [dict(row) for row in connection.execute(query).mappings()]
