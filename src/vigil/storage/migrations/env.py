"""Alembic environment: the URL comes from ``config.attributes`` (see vigil.storage.migrate)."""

from __future__ import annotations

from alembic import context

from vigil.storage.engine import create_db_engine
from vigil.storage.partitions import include_name
from vigil.storage.tables import metadata


def run_migrations() -> None:
    """Run migrations online against the URL handed over by ``upgrade_database``."""
    url = context.config.attributes.get("database_url")
    if not url:
        raise RuntimeError("no database URL: call vigil.storage.upgrade_database(url)")
    engine = create_db_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                include_name=include_name,
                render_as_batch=connection.dialect.name == "sqlite",
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


run_migrations()
