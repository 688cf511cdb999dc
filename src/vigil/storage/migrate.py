"""Apply the packaged Alembic migrations to a database given by URL."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config

from vigil.storage.engine import ensure_sqlite_directory

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    """An in-memory Alembic configuration pointing at the packaged migrations and ``url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Passed as an attribute, not an ini option, so '%' in URLs needs no escaping.
    config.attributes["database_url"] = url
    return config


def upgrade_database(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` up to ``revision`` (creates a SQLite file if needed)."""
    ensure_sqlite_directory(url)
    log.info("upgrading database schema to %s", revision)
    command.upgrade(alembic_config(url), revision)
