"""``vigil ui``: the Streamlit UI, run by ``streamlit run`` on the packaged script."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from vigil.cli.common import ConfigOption, SetOption, VerboseOption, start
from vigil.config import DEFAULT_CONFIG_PATH

DEFAULT_PORT = 8501


def streamlit_command(
    script_args: list[str], port: int, host: str | None, headless: bool
) -> list[str]:
    """``python -m streamlit run <packaged app.py> ... -- <script args>``."""
    from vigil.ui import app

    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(Path(app.__file__).resolve()),
        "--server.port",
        str(port),
        "--server.headless",
        str(headless).lower(),
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "viewer",
    ]
    if host:
        command += ["--server.address", host]
    return [*command, "--", *script_args]


def ui(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    overrides: SetOption = None,
    verbose: VerboseOption = False,
    api_url: Annotated[
        str | None,
        typer.Option(
            envvar="VIGIL_UI_API_URL",
            help="Score and read model metadata through this API (e.g. http://api:8000) "
            "instead of starting the API app inside the UI process.",
        ),
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Bind address (default: Streamlit's, all interfaces).")
    ] = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = DEFAULT_PORT,
    headless: Annotated[
        bool, typer.Option(help="Do not open a browser (servers, containers).")
    ] = True,
) -> None:
    """Start the Streamlit UI: score, simulate, history, analytics and models pages."""
    from vigil.ui.options import script_args

    start(config, overrides, verbose)  # fail here, not in the browser, on a bad configuration
    command = streamlit_command(script_args(config, overrides or [], api_url), port, host, headless)
    typer.echo(f"Vigil UI on http://{host or 'localhost'}:{port}")
    sys.stdout.flush()
    # Become Streamlit (no parent left behind), so stop signals reach the server directly.
    os.execv(command[0], command)


def register(app: typer.Typer) -> None:
    """Attach ``vigil ui`` to the ``vigil`` app."""
    app.command("ui")(ui)
