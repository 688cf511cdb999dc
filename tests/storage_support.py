"""Helpers for the storage tests: hand-made scored transactions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from vigil.storage import PredictionRecord


def prediction_record(
    transaction_id: int,
    *,
    tx_datetime: datetime = datetime(2018, 4, 1, 12),
    customer_id: int = 1,
    terminal_id: int = 2,
    tx_amount: float = 10.0,
    score: float = 0.1,
    label: int | None = None,
    threshold: float = 0.5,
    reason_codes: Sequence[str] = (),
    model_version: str = "m-1",
    latency_ms: float = 0.4,
    **optional: Any,
) -> PredictionRecord:
    """A scored transaction with these fields; the decision (``label``) is ``score >=
    threshold`` unless given. ``optional``: the record's other fields (``source``,
    ``received_at``, ``created_at``, ...)."""
    return PredictionRecord(
        transaction_id=transaction_id,
        tx_datetime=tx_datetime,
        customer_id=customer_id,
        terminal_id=terminal_id,
        tx_amount=tx_amount,
        score=score,
        label=int(score >= threshold) if label is None else label,
        threshold=threshold,
        reason_codes=list(reason_codes),
        model_version=model_version,
        latency_ms=latency_ms,
        **optional,
    )


def check_verdict_case_day_migration(url: str) -> None:
    """Migration 0008 on the empty database at ``url``, both ways: stored verdict rows get the
    day of their verdict's newest transaction (one verdict: the card, review time and analyst
    its rows share), their case day, and an index; the downgrade drops them."""
    from alembic import command
    from sqlalchemy import inspect, select

    from vigil.storage import create_db_engine, upgrade_database
    from vigil.storage.migrate import alembic_config
    from vigil.storage.tables import verdicts

    upgrade_database(url, "0007")
    engine = create_db_engine(url)
    end = datetime(2018, 10, 1)  # a review at the end of Sep 30
    rows = [  # (transaction, card, transaction time, reviewed at, analyst)
        (1, 7, datetime(2018, 9, 30, 8), end, "ana"),  # card 7's case of Sep 30
        (2, 7, datetime(2018, 9, 30, 9), end, "ana"),
        (3, 7, datetime(2018, 9, 26, 9), end, "ana"),  # ... its look-back
        (4, 7, datetime(2018, 9, 25, 9), datetime(2018, 9, 25, 18), "ana"),  # Sep 25's case
        (5, 8, datetime(2018, 9, 29, 10), end, "ana"),  # card 8's case of Sep 29, reviewed late
        (6, 8, datetime(2018, 9, 30, 10), end, "bob"),  # card 8's case of Sep 30, another analyst
    ]
    try:
        with engine.begin() as connection:
            connection.execute(
                verdicts.insert(),
                [
                    {
                        "transaction_id": tid,
                        "customer_id": card,
                        "terminal_id": 100,
                        "tx_datetime": when,
                        "is_fraud": 0,
                        "terminal_compromised": 0,
                        "reviewed_at": reviewed_at,
                        "analyst": analyst,
                        "note": None,
                        "received_at": datetime(2026, 12, 6),
                    }
                    for tid, card, when, reviewed_at, analyst in rows
                ],
            )
        upgrade_database(url)
        with engine.connect() as connection:
            days = dict(
                connection.execute(select(verdicts.c.transaction_id, verdicts.c.case_day)).all()
            )
        assert {tid: day.isoformat() for tid, day in days.items()} == {
            1: "2018-09-30",
            2: "2018-09-30",
            3: "2018-09-30",
            4: "2018-09-25",
            5: "2018-09-29",
            6: "2018-09-30",
        }
        indexes = {str(index["name"]) for index in inspect(engine).get_indexes("verdicts")}
        assert "ix_verdicts_case_day" in indexes
        command.downgrade(alembic_config(url), "0007")
        columns = {str(column["name"]) for column in inspect(engine).get_columns("verdicts")}
        assert "case_day" not in columns and "analyst" in columns
    finally:
        engine.dispose()
