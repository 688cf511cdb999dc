"""``vigil pipelines``: run a Dagster job in-process, or print how to start Dagster's UI."""

from __future__ import annotations

import os
import shlex
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vigil.cli.common import ConfigOption, SetOption, VerboseOption, fail, start
from vigil.config import DEFAULT_CONFIG_PATH

if TYPE_CHECKING:
    from dagster import ExecuteInProcessResult

DAGSTER_PORT = 3001
"""Dagster's UI port, as the compose stack publishes it (Grafana has dagster dev's 3000)."""

pipelines_app = typer.Typer(
    rich_markup_mode=None,
    help="Dagster pipelines: daily ETL, batch scoring, drift and performance marts, retrain.",
    no_args_is_help=True,
)

DateOption = Annotated[
    datetime | None,
    typer.Option("--date", formats=["%Y-%m-%d"], help="Day partition (daily job), YYYY-MM-DD."),
]
AsOfOption = Annotated[
    datetime | None,
    typer.Option(
        "--as-of", formats=["%Y-%m-%d"], help="Retrain: last test day [default: train.*]."
    ),
]


class Job(StrEnum):
    """The jobs ``vigil pipelines run`` knows."""

    daily = "daily"
    retrain = "retrain"


def _run_config(job: Job, as_of: datetime | None) -> dict[str, Any]:
    if job is Job.retrain and as_of is not None:
        config = {"as_of": as_of.date().isoformat()}
        return {"ops": {"challenger_model": {"config": config}}}
    return {}


def _echo_materializations(result: ExecuteInProcessResult) -> None:
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        shown = ", ".join(
            f"{key}={value.value}"
            for key, value in materialization.metadata.items()
            if not isinstance(value.value, dict | list)
        )
        typer.echo(f"{materialization.asset_key.to_user_string()}: {shown}")


def run(
    job: Annotated[Job, typer.Argument(help="daily or retrain.")],
    day: DateOption = None,
    as_of: AsOfOption = None,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    overrides: SetOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Materialize a job's assets in this process (runs show in the UI when DAGSTER_HOME is set)."""
    settings = start(config, overrides, verbose)
    if job is Job.daily and day is None:
        raise fail("the daily job needs --date YYYY-MM-DD (its day partition)", code=2)
    import dagster as dg

    from vigil.pipelines.definitions import build_definitions

    job_def = build_definitions(settings).resolve_job_def(job.value)
    home = os.environ.get("DAGSTER_HOME")
    instance = dg.DagsterInstance.get() if home else dg.DagsterInstance.ephemeral()
    with instance:
        result = job_def.execute_in_process(
            run_config=_run_config(job, as_of),
            instance=instance,
            partition_key=day.date().isoformat() if job is Job.daily and day else None,
            raise_on_error=False,
        )
        _echo_materializations(result)
    if not result.success:
        failures = [event.message for event in result.get_step_failure_events()]
        raise fail(f"{job.value} failed: {'; '.join(m or '' for m in failures)}")
    typer.echo(f"{job.value}: run {result.run_id} succeeded")


def dev(config: ConfigOption = DEFAULT_CONFIG_PATH) -> None:
    """Print the commands that start Dagster's webserver and daemon on these definitions."""
    home = Path(os.environ.get("DAGSTER_HOME", "data/dagster")).resolve()
    env = f"DAGSTER_HOME={shlex.quote(str(home))} VIGIL_CONFIG={shlex.quote(str(config))}"
    typer.echo(
        f"mkdir -p {shlex.quote(str(home))}\n"
        f"{env} dagster dev -m vigil.pipelines.definitions -p {DAGSTER_PORT}"
        f"   # UI on http://127.0.0.1:{DAGSTER_PORT}\n"
        "# production: dagster-webserver -m vigil.pipelines.definitions and dagster-daemon run\n"
        "# (schedules and sensors run only while the daemon does); VIGIL_* variables apply."
    )


def register(app: typer.Typer) -> None:
    """Attach ``vigil pipelines run|dev`` to the ``vigil`` app."""
    pipelines_app.command("run")(run)
    pipelines_app.command("dev")(dev)
    app.add_typer(pipelines_app, name="pipelines")
