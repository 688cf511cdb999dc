"""``vigil db upgrade``: apply the database migrations."""

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


def register(app: typer.Typer) -> None:
    """Attach the ``db`` command group to the ``vigil`` app."""
    app.add_typer(db_app, name="db")
