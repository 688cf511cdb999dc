"""``vigil limit``: run one stage under a memory limit and a CPU quota (a cgroup)."""

from __future__ import annotations

import json
from typing import Annotated

import typer


def limit(
    command: Annotated[list[str], typer.Argument(help="The stage's command (after --).")],
    memory: Annotated[
        str, typer.Option("--memory", "-m", help="Hard memory limit, page cache included.")
    ] = "2GB",
    cpus: Annotated[float, typer.Option("--cpus", help="CPU quota in cores.")] = 1.0,
    name: Annotated[str, typer.Option("--name", help="Name part of the cgroup.")] = "stage",
) -> None:
    """Run COMMAND in a cgroup (cgroup v1 files, root); print exit status, OOM kill, peak
    memory, CPU time and wall time as JSON on the last line; exit with the stage's status.
    """
    from vigil.stress.cgroup import Limits, parse_size, run_limited

    result = run_limited(command, Limits(parse_size(memory), cpus), name=name)
    typer.echo(json.dumps(result.as_dict()))
    code = result.returncode
    raise typer.Exit(code if code >= 0 else 128 - code)


def register(app: typer.Typer) -> None:
    """Attach the stress-campaign commands to the ``vigil`` app."""
    app.command("limit", context_settings={"allow_interspersed_args": False})(limit)
