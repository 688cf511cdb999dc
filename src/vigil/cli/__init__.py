"""The ``vigil`` command: one Typer app, one sub-module per area.

Each area module exposes ``register(app)`` and imports its heavy dependencies inside the
command functions, so ``vigil --help`` stays fast and serving never imports torch.
"""

from __future__ import annotations

from typing import Annotated

import typer

import vigil
from vigil.cli import (
    backfill_commands,
    data_commands,
    feature_commands,
    feedback_commands,
    inference_commands,
    lifecycle_commands,
    model_commands,
    ops_commands,
    pipeline_commands,
    report_commands,
    serve_commands,
    storage_commands,
    stream_commands,
    stress_commands,
    ui_commands,
)

app = typer.Typer(
    rich_markup_mode=None,
    name="vigil",
    help="Vigil: real-time card fraud detection with a complete MLOps lifecycle.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"vigil {vigil.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Vigil: real-time card fraud detection with a complete MLOps lifecycle."""


for area in (
    data_commands,
    feature_commands,
    model_commands,
    feedback_commands,
    ops_commands,
    storage_commands,
    inference_commands,
    serve_commands,
    stream_commands,
    lifecycle_commands,
    ui_commands,
    pipeline_commands,
    report_commands,
    stress_commands,
    backfill_commands,
):
    area.register(app)
