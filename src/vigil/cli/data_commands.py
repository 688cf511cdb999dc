"""``vigil config``, ``vigil generate``, ``vigil validate``, ``vigil features``."""

from __future__ import annotations

import json

import typer

from vigil.cli.common import ConfigOption, SetOption, VerboseOption, start
from vigil.config import DEFAULT_CONFIG_PATH, settings_to_dict


def show_config(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    overrides: SetOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Print the resolved configuration (file + VIGIL_* environment + --set) as JSON."""
    settings = start(config, overrides, verbose)
    typer.echo(json.dumps(settings_to_dict(settings), indent=2))


def register(app: typer.Typer) -> None:
    """Attach the data commands to the ``vigil`` app."""
    app.command("config")(show_config)
