"""``vigil dashboards``: operations artefacts generated from code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vigil.cli.common import VerboseOption
from vigil.logs import configure_logging

DEFAULT_DASHBOARD_DIR = Path("deploy/grafana/dashboards")


def generate_dashboards(
    out_dir: Annotated[
        Path, typer.Option("--output", "-o", "--out", help="Folder for the dashboard JSON files.")
    ] = DEFAULT_DASHBOARD_DIR,
    verbose: VerboseOption = False,
) -> None:
    """Write the Grafana dashboards (service, model, business) as JSON files."""
    from vigil.monitoring.dashboards import write_dashboards

    configure_logging(verbose=verbose)
    for path in write_dashboards(out_dir):
        typer.echo(str(path))


def register(app: typer.Typer) -> None:
    """Attach the operations commands to the ``vigil`` app."""
    app.command("dashboards")(generate_dashboards)
