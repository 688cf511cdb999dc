"""Options and helpers shared by every ``vigil`` subcommand."""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path
from typing import Annotated

import typer

from vigil.config import DEFAULT_CONFIG_PATH, ConfigError, Settings, load_settings
from vigil.logs import configure_logging

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        help="YAML configuration file [default: configs/vigil.yaml of the project root, or "
        "$VIGIL_CONFIG].",
        show_default=False,
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        metavar="KEY=VALUE|@FILE",
        help="Override a setting: section.key=value, or @FILE for every key of a YAML file "
        "of sections (repeatable; later wins).",
    ),
]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")]


MLFLOW_FILE_STORE_OPT_IN = "MLFLOW_ALLOW_FILE_STORE"


def allow_mlflow_file_store(settings: Settings, environ: MutableMapping[str, str]) -> None:
    """Opt this process in to MLflow's file store when ``tracking.mlflow_uri`` is one.

    The embedded default (DESIGN: "MLflow file store"); MLflow 3 refuses it without
    ``MLFLOW_ALLOW_FILE_STORE=true`` and offers no other switch, so entry points set it once
    (child processes inherit it); library code never touches the environment.
    """
    if settings.tracking.mlflow_uri.startswith("file:"):
        environ.setdefault(MLFLOW_FILE_STORE_OPT_IN, "true")


def start(
    config: Path = DEFAULT_CONFIG_PATH,
    overrides: list[str] | None = None,
    verbose: bool = False,
    json_logs: bool = False,
) -> Settings:
    """Entry-point preamble: configure logging and build the one settings object."""
    configure_logging(verbose=verbose, json_format=json_logs)
    try:
        settings = load_settings(config, overrides or [], environ=os.environ)
    except ConfigError as error:
        typer.secho(f"configuration error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
    allow_mlflow_file_store(settings, os.environ)
    return settings


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a clear error (no traceback) and return the exit to raise."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=code)
