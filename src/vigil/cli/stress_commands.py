"""``vigil limit`` (a stage under a memory limit and a CPU quota) and ``vigil stress``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vigil.cli.common import VerboseOption
from vigil.logs import configure_logging

stress_app = typer.Typer(
    help="The stress campaign (issue 15): load, surge, faults, report.", no_args_is_help=True
)


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


@stress_app.command("load")
def load(
    transactions: Annotated[
        Path, typer.Option("--transactions", help="Parquet of transactions, sent in order.")
    ],
    phases: Annotated[str, typer.Option(help="SECONDS:RATE,... e.g. 60:1000,30:10000")],
    out: Annotated[Path, typer.Option("--out", help="Records of every request (.npz).")],
    host: Annotated[str, typer.Option(help="API host.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="API port.")] = 8000,
    connections: Annotated[int, typer.Option(help="Most keep-alive connections.")] = 256,
    timeout: Annotated[float, typer.Option(help="Seconds before a request times out.")] = 10.0,
) -> None:
    """Open-loop POST /predict load at fixed rates; prints START <epoch> when it begins."""
    import pandas as pd

    from vigil.stress.loadgen import LoadGenerator, generate, needed_rows, parse_phases

    plan = parse_phases(phases)
    frame = pd.read_parquet(transactions).head(needed_rows(plan))
    generator = LoadGenerator(
        host, port, plan, frame, max_connections=connections, timeout_s=timeout
    )
    records = generate(generator, lambda zero: typer.echo(f"START {zero:.6f}"))
    records.save(str(out))
    answered = int((records.status > 0).sum())
    typer.echo(f"sent {len(records.status):,} requests, {answered:,} answered")


@stress_app.command("run")
def run(
    plan: Annotated[str, typer.Option(help="full (the report) or mini (CI, ~1 min).")] = "full",
    workdir: Annotated[Path, typer.Option(help="Scratch folder.")] = Path("data/stress"),
    report: Annotated[Path, typer.Option(help="Where to write the report.")] = Path(
        "docs/STRESS_REPORT.md"
    ),
    model: Annotated[
        Path | None, typer.Option(help="ONNX model to serve (default: train one on the world).")
    ] = None,
    locustfile: Annotated[Path, typer.Option(help="Locust scenario.")] = Path("locustfile.py"),
    alert_rules: Annotated[
        Path, typer.Option(help="Prometheus rule files evaluated during the run (a folder).")
    ] = Path("deploy/prometheus/rules"),
    verbose: VerboseOption = False,
) -> None:
    """Run the campaign (root: cgroups, a private PostgreSQL) and write the report."""
    from vigil.stress.campaign import PLANS, Campaign
    from vigil.stress.report import write_report

    configure_logging(verbose=verbose)
    campaign = Campaign(
        PLANS[plan], workdir.resolve(), model, locustfile.resolve(), alert_rules.resolve()
    )
    results = campaign.run()
    typer.echo(str(write_report(results, report)))


@stress_app.command("report")
def report(
    results: Annotated[
        Path, typer.Option(help="A campaign's results.json (vigil stress run's workdir).")
    ] = Path("data/stress/results.json"),
    out: Annotated[Path, typer.Option(help="Where to write the report.")] = Path(
        "docs/STRESS_REPORT.md"
    ),
) -> None:
    """Write the report again from a campaign's results (no new run)."""
    from vigil.stress.report import write_report

    typer.echo(str(write_report(results, out)))


def register(app: typer.Typer) -> None:
    """Attach the stress-campaign commands to the ``vigil`` app."""
    app.command("limit", context_settings={"allow_interspersed_args": False})(limit)
    app.add_typer(stress_app, name="stress")
