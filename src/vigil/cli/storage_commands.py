"""``vigil db upgrade`` (apply the migrations) and ``vigil db maintain`` (day partitions)."""

from __future__ import annotations

import typer

from vigil.cli.common import ConfigOption, SetOption, VerboseOption, fail, start
from vigil.config import DEFAULT_CONFIG_PATH

db_app = typer.Typer(
    rich_markup_mode=None, help="Database schema management.", no_args_is_help=True
)


@db_app.command("upgrade")
def upgrade(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    overrides: SetOption = None,
    verbose: VerboseOption = False,
    revision: str = typer.Option("head", help="Alembic revision to upgrade to."),
) -> None:
    """Create or migrate the tables in ``storage.database_url``."""
    settings = start(config, overrides, verbose)
    from sqlalchemy.exc import SQLAlchemyError

    from vigil.storage import upgrade_database

    try:
        upgrade_database(settings.storage.database_url, revision)
    except SQLAlchemyError as error:
        raise fail(f"could not upgrade the database: {error}") from None
    typer.echo(f"database at revision {revision}")


@db_app.command("maintain")
def maintain(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    overrides: SetOption = None,
    verbose: VerboseOption = False,
    keep_days: int | None = typer.Option(
        None, min=1, help="Days kept (default storage.retention_days; unset keeps all)."
    ),
) -> None:
    """PostgreSQL: create the day partitions ahead and drop those past the retention."""
    settings = start(config, overrides, verbose)
    from sqlalchemy.exc import SQLAlchemyError

    from vigil.storage import create_db_engine
    from vigil.storage.partitions import maintain_partitions

    storage = settings.storage
    engine = create_db_engine(storage.database_url, pool_size=1)
    try:
        report = maintain_partitions(
            engine, storage.partition_days_ahead, keep_days or storage.retention_days
        )
    except SQLAlchemyError as error:
        raise fail(f"could not maintain the partitions: {error}") from None
    finally:
        engine.dispose()
    if not report.partitioned:
        typer.echo("no day partitions in this database (SQLite, or not upgraded): nothing to do")
        return
    typer.echo(f"created {len(report.created)} partitions: {' '.join(report.created) or '-'}")
    typer.echo(f"dropped {len(report.dropped)} partitions: {' '.join(report.dropped) or '-'}")


def register(app: typer.Typer) -> None:
    """Attach the ``db`` command group to the ``vigil`` app."""
    app.add_typer(db_app, name="db")
