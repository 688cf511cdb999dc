"""Engines for SQLite files and PostgreSQL, with the settings Vigil relies on."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

log = logging.getLogger(__name__)


def is_sqlite(url: str) -> bool:
    """True for ``sqlite://`` URLs."""
    return make_url(url).get_backend_name() == "sqlite"


def ensure_sqlite_directory(url: str) -> None:
    """Create the folder a SQLite database file lives in (no-op for other backends)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the writer; synchronous=FULL makes every commit durable.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def create_db_engine(url: str, pool_size: int = 5, pre_ping: bool = True) -> Engine:
    """A SQLAlchemy engine for ``url`` (SQLite file or PostgreSQL via psycopg).

    ``pre_ping`` checks a pooled connection before use, so the first call after the database
    restarted or dropped the session gets a fresh one; the hot write paths turn it off as they
    retry a lost connection themselves (``storage/sinks.py``, ``streaming/persistence.py``).
    """
    if is_sqlite(url):
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_size=pool_size, pool_pre_ping=pre_ping)


def is_unavailable_error(error: BaseException) -> bool:
    """Whether a database error means "the database cannot be reached right now"."""
    if isinstance(error, OperationalError | InterfaceError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


def ping(engine: Engine) -> None:
    """Run ``SELECT 1``; raises the driver's error when the database is unreachable."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
