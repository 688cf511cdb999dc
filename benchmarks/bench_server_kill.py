"""Durability when the server dies: ``vigil serve`` SIGKILLed under load loses no acknowledged
prediction.

Eight threads send /predict with unique ids; after 4 s ``vigil serve`` is SIGKILLed (kill -9:
no shutdown, no flush), started again on the same database 3 s later, and the load goes on
for 4 s more. Every 2xx answer must be a stored row; requests in flight at the kill get no
answer and may or may not be stored. Embedded defaults (a SQLite file, in-process state)
unless ``--database-url`` / ``--state-url`` name others, e.g. PostgreSQL and Redis.

    .venv/bin/python benchmarks/bench_server_kill.py
    .venv/bin/python benchmarks/bench_server_kill.py \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/vigil_kill \\
        --state-url redis://127.0.0.1:6379/2

The model is a generated MLP-shaped graph over the configured features unless ``--model``
names one.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import tempfile
import time
from pathlib import Path

from sqlalchemy import make_url, select

from bench_api import default_model, drop_database, ensure_database
from bench_redis_kill import Load, start_serve, wait_ready
from vigil.config import load_settings
from vigil.storage import create_db_engine, upgrade_database
from vigil.storage.tables import predictions


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="ONNX model (default: generated MLP)")
    parser.add_argument(
        "--database-url",
        help="default: a SQLite file in a temporary folder; a PostgreSQL URL names the server "
        "and a database name prefix (a fresh database per run: the load's ids repeat)",
    )
    parser.add_argument("--state-url", default="memory://", help="online state")
    parser.add_argument("--port", type=int, default=8798, help="vigil serve")
    parser.add_argument("--threads", type=int, default=8)
    return parser.parse_args()


def stored_ids(database_url: str) -> set[int]:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            return set(connection.execute(select(predictions.c.transaction_id)).scalars())
    finally:
        engine.dispose()


def main() -> None:
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vigil-server-kill-"))
    database_url = args.database_url or f"sqlite:///{tmp / 'vigil.db'}"
    if database_url.startswith("postgresql"):  # a fresh database: no id stored by a past run
        url = make_url(database_url)
        fresh = url.set(database=f"{url.database}_{secrets.token_hex(4)}")
        database_url = fresh.render_as_string(hide_password=False)
        ensure_database(database_url)
    upgrade_database(database_url)
    model = args.model or default_model(tmp, load_settings().features)
    base = f"http://127.0.0.1:{args.port}"
    server = start_serve(tmp, args.port, model, args.state_url, database_url)
    try:
        wait_ready(base)
        load = Load(base, args.threads)
        load.start()
        time.sleep(4)
        server.send_signal(signal.SIGKILL)
        server.wait()
        acked_before_kill = len(load.acked)
        time.sleep(3)
        server = start_serve(tmp, args.port, model, args.state_url, database_url)
        wait_ready(base)
        time.sleep(4)
        load.stop()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    stored = stored_ids(database_url)
    if database_url.startswith("postgresql"):
        drop_database(database_url)
    lost = [tid for tid in load.acked if tid not in stored]
    print(f"database: {database_url.split('://')[0]}, state: {args.state_url.split('://')[0]}")
    print(f"answers by status: {dict(sorted(load.codes.items()))} (-1: no answer, server down)")
    print(f"acknowledged before the kill: {acked_before_kill}; rows stored: {len(stored)}")
    print(f"server SIGKILL under load: {len(load.acked)} acknowledged, {len(lost)} lost")


if __name__ == "__main__":
    main()
