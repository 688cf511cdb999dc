"""``vigil train`` and ``vigil experiments``: train, export and compare models."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from vigil.cli.common import ConfigOption, SetOption, VerboseOption, fail, start
from vigil.config import DEFAULT_CONFIG_PATH, ConfigError

DataOption = Annotated[
    Path | None,
    typer.Option("--data", help="Raw transactions: file or directory (default: data.raw_dir)."),
]
RunsDirOption = Annotated[
    Path | None, typer.Option("--runs-dir", help="Run directories (default: train.runs_dir).")
]

experiments_app = typer.Typer(
    rich_markup_mode=None,
    help="Run configs/experiments/*.yaml and compare runs.",
    no_args_is_help=False,
)


def train_command(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    overrides: SetOption = None,
    verbose: VerboseOption = False,
    data: DataOption = None,
    promote: Annotated[
        bool, typer.Option("--promote", help="Also write the model to inference.model_path.")
    ] = False,
    challenger: Annotated[
        Path | None,
        typer.Option(
            "--challenger",
            help="Run the retrain job instead: train, register the run as the registry's "
            "challenger and write the outcome (model, metrics, MLflow run) to this JSON file. "
            "PUT /retrain runs this; the Dagster retrain job runs the same code.",
        ),
    ] = None,
    stream_features: Annotated[
        Path | None,
        typer.Option(
            "--stream-features",
            help="Train on a feature Parquet (`vigil features`), the fitting rows streamed one "
            "row group at a time instead of loaded (mlp, lightgbm; for tens of millions of rows).",
        ),
    ] = None,
    simulated_verdicts: Annotated[
        bool,
        typer.Option(
            "--simulated-verdicts",
            help="Simulated data only, with features.verdicts=true: the verdict features come "
            "from a simulated investigator who reviews each day's top cards of a point-in-time "
            "model's scores (as `vigil evaluate --feedback`).",
        ),
    ] = False,
) -> None:
    """Train, evaluate and export one model into a new run directory."""
    settings = start(config, overrides, verbose)
    if challenger is not None and (
        promote or data is not None or stream_features is not None or simulated_verdicts
    ):
        raise fail(
            "--challenger trains on data.raw_dir, without simulated verdicts, and never "
            "promotes (the gate does)"
        )
    if data is not None and stream_features is not None:
        raise fail("give --data (raw transactions) or --stream-features (a feature Parquet)")
    from vigil.training.challenger import train_challenger
    from vigil.training.run import train

    try:
        if challenger is not None:
            trained = train_challenger(settings)
            trained.outcome().write_json(challenger)
            run_dir = trained.model.parent
        else:
            run_dir = train(settings, data, promote, stream_features, simulated_verdicts)
    except (ValueError, RuntimeError, OSError, LookupError) as error:
        raise fail(str(error)) from None
    typer.echo(str(run_dir))


def bootstrap(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    overrides: SetOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Make sure a serving model exists: when inference.model_path is missing, simulate data
    into data.raw_dir (if it holds none) and train and promote a first model.

    Idempotent: `docker compose up`'s one-shot `init` service runs it before the API and the
    worker start, so a fresh stack serves without manual steps.
    """
    settings = start(config, overrides, verbose)
    model_path = settings.inference.model_path
    if model_path.is_file():
        typer.echo(f"model present at {model_path}: nothing to do")
        return
    raw = settings.data.raw_dir
    from vigil.data.simulate import generate
    from vigil.training.run import train

    try:
        if not (raw.is_dir() and next(raw.rglob("*.parquet"), None) is not None):
            summary = generate(settings.data, raw, progress=False)
            typer.echo(f"simulated {summary.rows:,} transactions into {raw}")
        run_dir = train(settings, None, promote=True)
    except (ValueError, RuntimeError, OSError, LookupError) as error:
        raise fail(f"bootstrap failed: {error}") from None
    typer.echo(f"trained {run_dir.name} and promoted it to {model_path}")


@experiments_app.callback(invoke_without_command=True)
def experiments_table(
    ctx: typer.Context,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    runs_dir: RunsDirOption = None,
    results: Annotated[
        Path | None,
        typer.Option("--results", help="Also write the comparison as JSON (e.g. docs/results/)."),
    ] = None,
) -> None:
    """Without a subcommand: the comparison table of the runs already in the runs dir."""
    if ctx.invoked_subcommand is not None:
        return
    settings = start(config)
    from vigil.training.experiments import (
        aggregate,
        format_table,
        read_run_metrics,
        results_payload,
    )

    runs = read_run_metrics(runs_dir or settings.train.runs_dir)
    if not runs:
        raise fail(f"no runs in {runs_dir or settings.train.runs_dir}")
    typer.echo(format_table(aggregate(runs)))
    if results is not None:
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps(results_payload(runs), indent=2) + "\n")
        typer.echo(f"results: {results}")


@experiments_app.command("run")
def experiments_run(
    names: Annotated[
        list[str] | None, typer.Argument(help="Experiment names (default: all).")
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    overrides: SetOption = None,
    verbose: VerboseOption = False,
    data: DataOption = None,
    seeds: Annotated[
        str,
        typer.Option(
            "--seeds",
            help="Seeds per experiment: a list (0,1,2,3,4), a range (0-4) or a count from "
            "train.seed (5). The table shows mean ± std over them.",
        ),
    ] = "1",
    experiments_dir: Annotated[
        Path, typer.Option("--experiments-dir", help="Where the override files are.")
    ] = Path("configs/experiments"),
) -> None:
    """Run experiments (override files merged over --config) and print the comparison."""
    start(config, overrides, verbose)
    from vigil.training.experiments import (
        aggregate,
        experiment_files,
        format_table,
        run_experiments,
    )

    try:
        files = experiment_files(experiments_dir, names or [])
        results = run_experiments(config, files, overrides or [], data, seeds, environ=os.environ)
    except (ConfigError, ValueError, RuntimeError, OSError) as error:
        raise fail(str(error)) from None
    typer.echo(format_table(aggregate(results)))


def register(app: typer.Typer) -> None:
    """Attach the model commands to the ``vigil`` app."""
    app.command("train")(train_command)
    app.command("bootstrap")(bootstrap)
    app.add_typer(experiments_app, name="experiments")
