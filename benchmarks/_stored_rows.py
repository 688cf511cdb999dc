"""Stored history for the API benchmark: ``rows`` decisions spread over ``days`` past days.

Issue 16 asks that single-node ``/predict`` not get slower as the database fills: this puts
rows (and, on a day-partitioned database, one partition per day) in place before a run, in
a few set-based statements. Ids come from a range the benchmark's requests never use.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import create_engine, text

FIRST_ID = 9 * 10**15  # above every id a benchmark run sends (below 2**63)


def preload(database_url: str, rows: int, days: int) -> str:
    """Insert ``rows`` stored decisions received over the last ``days`` days; a summary."""
    from vigil.storage.partitions import ID_INDEX, ensure_partitions, is_partitioned, utc_today

    engine = create_engine(database_url)
    with engine.begin() as connection:
        first = FIRST_ID + int(
            connection.execute(
                text("SELECT count(*) FROM transactions WHERE transaction_id >= :f"),
                {"f": FIRST_ID},
            ).scalar_one()
        )
        partitioned = is_partitioned(connection)
        if partitioned:
            today = utc_today()
            ensure_partitions(connection, (today - timedelta(days=d) for d in range(days)))
        ids = (
            "SELECT g AS id, now() - (g % :days) * interval '1 day' AS at "
            "FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g"
        )
        bounds = {"days": days, "first": first, "last": first + rows - 1}
        connection.execute(
            text(
                "INSERT INTO transactions (transaction_id, tx_datetime, customer_id, "
                "terminal_id, tx_amount, extra, received_at) SELECT id, at AT TIME ZONE 'UTC', "
                f"id % 2000, id % 4000, (id % 20000) / 100.0, 'null'::json, at FROM ({ids}) s"
            ),
            bounds,
        )
        connection.execute(
            text(
                "INSERT INTO predictions (transaction_id, score, label, threshold, "
                "reason_codes, model_version, latency_ms, source, created_at) SELECT id, 0.1, 0, "
                f"0.5, '[]'::json, 'preloaded', 1.0, 'api', at FROM ({ids}) s"
            ),
            bounds,
        )
        if partitioned:
            connection.execute(
                text(
                    f"INSERT INTO {ID_INDEX} (transaction_id, received_at) "
                    f"SELECT id, at FROM ({ids}) s"
                ),
                bounds,
            )
        connection.execute(text("ANALYZE"))  # statistics as autovacuum would leave them
        stored = connection.execute(text("SELECT count(*) FROM transactions")).scalar_one()
        partitions = connection.execute(
            text(
                "SELECT count(*) FROM pg_inherits WHERE inhparent IN "
                "(to_regclass('transactions'), to_regclass('predictions'))"
            )
        ).scalar_one()
    engine.dispose()
    return f"{stored:,} stored transactions, {partitions} partitions of the two tables"
