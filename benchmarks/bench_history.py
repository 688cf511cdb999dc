"""History page card filter: a card's newest decisions, read through ``transactions`` (no card
index: every stored row is read) against the case queue's copy (its card index), the copy
first brought up to the queue's freshness (:func:`vigil.storage.case_copy.sync_stored_days`),
and what checking every stored day (a count each) would cost instead.

The database holds ``--days`` days of ``--transactions`` scored transactions of ``--cards``
cards. Each round times (wall, in process, the database's work included) the old query, the
sync with nothing to copy, a check of every day, and the new query, for a different card;
medians are printed last. Timings on a shared machine are noisy: compare within one run.

    .venv/bin/python benchmarks/bench_history.py                       # SQLite file
    .venv/bin/python benchmarks/bench_history.py --database-url \
        postgresql+psycopg://postgres@127.0.0.1:5432/vigil_bench_history
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, select, text

from vigil.storage import (
    PredictionRecord,
    create_db_engine,
    insert_prediction_records,
    upgrade_database,
)
from vigil.storage.analytics import HistoryFilter, history_query
from vigil.storage.case_copy import stored_days, sync_days, sync_stored_days
from vigil.storage.tables import labels, predictions, transactions

START = datetime(2018, 9, 1)
CHUNK = 20_000


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--transactions", type=int, default=30_000, help="a day")
    parser.add_argument("--cards", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    return parser.parse_args()


def fill(engine: Engine, args: argparse.Namespace) -> None:
    """The days of scored transactions; the copy then holds every day (the queue read them)."""
    rng = np.random.default_rng(5)
    written = 0
    for day in range(args.days):
        seconds = np.sort(rng.uniform(0, 86_400, args.transactions))
        cards = rng.integers(0, args.cards, args.transactions)
        records = [
            PredictionRecord(
                transaction_id=written + i,
                tx_datetime=START + timedelta(days=day, seconds=float(seconds[i])),
                customer_id=int(cards[i]),
                terminal_id=int(i % 5_000),
                tx_amount=float(i % 300),
                score=0.1,
                label=0,
                threshold=0.5,
                reason_codes=[],
                model_version="bench-history",
                latency_ms=1.0,
            )
            for i in range(args.transactions)
        ]
        with engine.begin() as connection:
            for start in range(0, len(records), CHUNK):
                insert_prediction_records(connection, records[start : start + CHUNK])
        written += len(records)
    with engine.begin() as connection:
        sync_stored_days(connection)
        connection.execute(text("ANALYZE"))


def old_query(where: HistoryFilter) -> Any:
    """The card filter as it read before: ``transactions`` joined, filtered by card."""
    return (
        select(predictions.c.transaction_id, transactions.c.customer_id, labels.c.tx_fraud)
        .join_from(
            predictions, transactions, predictions.c.transaction_id == transactions.c.transaction_id
        )
        .outerjoin(labels, predictions.c.transaction_id == labels.c.transaction_id)
        .where(transactions.c.customer_id == where.customer_id)
        .order_by(predictions.c.created_at.desc(), predictions.c.transaction_id.desc())
        .limit(where.limit)
    )


def timed(call: Callable[[], object]) -> float:
    """Wall milliseconds of ``call`` (the database's work included)."""
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1e3


def main() -> None:
    """Fill, then alternate the reads; print the medians."""
    args = parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'vigil.db'}"
        upgrade_database(url)
        engine = create_db_engine(url)
        fill(engine, args)
        figures: dict[str, list[float]] = {"old": [], "sync": [], "check_all": [], "new": []}
        for round_ in range(args.rounds):
            where = HistoryFilter(customer_id=round_ * 7 + 1)
            with engine.connect() as connection:
                old = timed(lambda c=connection, w=where: c.execute(old_query(w)).all())
            with engine.begin() as connection:
                sync = timed(lambda c=connection: sync_stored_days(c))
            with engine.begin() as connection:
                days = stored_days(connection)
                check = timed(lambda c=connection, d=days: sync_days(c, d, recheck=d))
            with engine.connect() as connection:
                new = timed(lambda c=connection, w=where: c.execute(history_query(w)).all())
            for name, wall in zip(figures, (old, sync, check, new), strict=True):
                figures[name].append(wall)
        engine.dispose()
    rows = args.days * args.transactions
    print(f"{engine.dialect.name}, {rows:,} transactions over {args.days} days:")
    for name, values in figures.items():
        print(f"  {name}: median {statistics.median(values):.1f} ms of {values}")


if __name__ == "__main__":
    main()
