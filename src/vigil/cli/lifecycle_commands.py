"""``vigil registry ...`` (MLflow model registry) and ``vigil stage ...`` (DVC pipeline steps)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from vigil.cli.common import ConfigOption, SetOption, VerboseOption, fail, start
from vigil.config import DEFAULT_CONFIG_PATH

registry_app = typer.Typer(
    rich_markup_mode=None, help="MLflow model registry: versions, aliases, promotion gate."
)
stage_app = typer.Typer(
    rich_markup_mode=None, help="Steps of the DVC pipeline that no other command covers."
)

AliasOption = Annotated[
    str, typer.Option("--alias", "-a", help="champion | challenger", show_default=True)
]


def register_run(
    run_dir: Annotated[
        Path | None,
        typer.Option(
            help="A run directory or a folder of runs (newest) [default: train.runs_dir]."
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Where to write registration.json [default: run dir].")
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    overrides: SetOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Register a finished run's ONNX model with lineage tags; it becomes the challenger."""
    settings = start(config, overrides, verbose)
    from vigil.tracking.model_registry import RegistryError
    from vigil.tracking.registration import latest_run_dir
    from vigil.tracking.registration import register_run as register

    try:
        registration = register(
            settings, latest_run_dir(run_dir or settings.train.runs_dir), output
        )
    except (FileNotFoundError, RegistryError) as error:
        raise fail(str(error)) from None
    typer.echo(
        f"registered {registration.model_name} v{registration.version} from run "
        f"{registration.run_id} ({', '.join(registration.aliases)})"
    )


def show(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    overrides: SetOption = None,
    verbose: VerboseOption = False,
) -> None:
    """List registered model versions with their aliases and lineage tags."""
    settings = start(config, overrides, verbose)
    from rich.console import Console
    from rich.table import Table

    from vigil.redaction import mask_url
    from vigil.tracking.lineage import TAG_DATASET_VERSION, TAG_DVC_DATA_HASH, TAG_GIT_COMMIT
    from vigil.tracking.model_registry import ModelRegistry

    registry = ModelRegistry(settings.tracking)
    versions = registry.versions()
    if not versions:
        typer.echo(
            f"registered model {registry.name}: no version yet in "
            f"{mask_url(settings.tracking.mlflow_uri)} "
            f"(`vigil train` only logs a run; `vigil registry register` registers the newest "
            f"of {settings.train.runs_dir}, as the DVC pipeline's train_model stage does)"
        )
        return
    table = Table("version", "aliases", "run id", "dataset", "git commit", "DVC data hash")
    for version in versions:
        tags = version.tags
        table.add_row(
            str(version.version),
            ", ".join(version.aliases),
            version.run_id,
            tags.get(TAG_DATASET_VERSION, ""),
            tags.get(TAG_GIT_COMMIT, "")[:12],
            tags.get(TAG_DVC_DATA_HASH, ""),
        )
    Console(width=160).print(table, f"registered model: {registry.name}")


def promote(
    version: Annotated[int, typer.Argument(help="Registered model version.")],
    alias: AliasOption = "champion",
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    overrides: SetOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Point an alias (champion by default) at a model version."""
    settings = start(config, overrides, verbose)
    from vigil.tracking.model_registry import ModelRegistry, RegistryError

    try:
        ModelRegistry(settings.tracking).set_alias(alias, version)
    except RegistryError as error:
        raise fail(str(error)) from None
    typer.echo(f"{alias} -> {settings.tracking.registered_model} v{version}")


def pull(
    alias: AliasOption = "champion",
    to: Annotated[
        Path | None, typer.Option(help="Model file to write [default: inference.model_path].")
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    overrides: SetOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Install the model an alias points at as the serving model file (atomically)."""
    settings = start(config, overrides, verbose)
    import tempfile

    from vigil.inference.deploy import install_model
    from vigil.tracking.model_registry import ModelRegistry, RegistryError

    target = to or settings.inference.model_path
    with tempfile.TemporaryDirectory() as scratch:
        try:
            downloaded = ModelRegistry(settings.tracking).resolve(alias, Path(scratch))
        except RegistryError as error:
            raise fail(str(error)) from None
        install_model(downloaded, target)
    typer.echo(f"{alias} model installed at {target}")


def gate(
    features: Annotated[
        Path | None, typer.Option(help="Labelled feature table [default: features.output_path].")
    ] = None,
    recent_days: Annotated[int, typer.Option(min=1, help="Days of recent labels compared.")] = 7,
    bootstrap: Annotated[int, typer.Option(min=50, help="Bootstrap resamples.")] = 300,
    apply: Annotated[
        bool, typer.Option("--promote", help="Move the champion alias if the challenger wins.")
    ] = False,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    overrides: SetOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Champion vs challenger on recently labelled data (AP, CP@k, bootstrap intervals)."""
    settings = start(config, overrides, verbose)
    import tempfile

    import pandas as pd

    from vigil.inference.roles import CHALLENGER, CHAMPION
    from vigil.tracking.model_registry import ModelRegistry
    from vigil.training.gate import GatePolicy, run_gate

    registry = ModelRegistry(settings.tracking)
    champion, challenger = registry.by_alias(CHAMPION), registry.by_alias(CHALLENGER)
    if champion is None or challenger is None:
        raise fail("the gate needs both a champion and a challenger alias")
    if champion.version == challenger.version:
        raise fail(f"champion and challenger are the same version ({champion.version})")
    policy = GatePolicy(recent_days, settings.train.top_k_cards, bootstrap)
    table = pd.read_parquet(features or settings.features.output_path)
    with tempfile.TemporaryDirectory() as scratch:
        decision = run_gate(
            registry.download(champion, Path(scratch) / "champion"),
            registry.download(challenger, Path(scratch) / "challenger"),
            table,
            policy,
        )
    typer.echo(json.dumps(decision.as_dict(), indent=2))
    if decision.promote and apply:
        registry.set_alias(CHAMPION, challenger.version)
        typer.echo(f"champion -> v{challenger.version}")


def stage_evaluate(
    model: Annotated[Path, typer.Option(help="ONNX model file.")],
    features: Annotated[Path, typer.Option(help="Feature table (Parquet).")],
    out: Annotated[
        Path, typer.Option("--output", "-o", "--out", help="Folder for metrics.json and plot CSVs.")
    ],
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    overrides: SetOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Test-period metrics and plot series of an ONNX model (the DVC evaluate stage)."""
    settings = start(config, overrides, verbose)
    from vigil.training.evaluate import evaluate_model

    files = evaluate_model(settings, model, features, out)
    typer.echo(files.metrics.read_text())


def stage_holdout(
    features: Annotated[Path, typer.Option(help="Feature table (Parquet).")],
    start_date: Annotated[str, typer.Option("--start", help="First hold-out day, YYYY-MM-DD.")],
    out: Annotated[
        Path, typer.Option("--output", "-o", "--out", help="Hold-out feature rows (Parquet).")
    ],
    verbose: VerboseOption = False,
) -> None:
    """Cut the hold-out period out of the feature table (input of batch scoring)."""
    start(DEFAULT_CONFIG_PATH, None, verbose)
    from vigil.training.evaluate import write_holdout

    try:
        rows = write_holdout(features, date.fromisoformat(start_date), out)
    except ValueError as error:
        raise fail(str(error)) from None
    typer.echo(f"wrote {rows:,} hold-out rows to {out}")


def register(app: typer.Typer) -> None:
    """Attach the lifecycle commands to the ``vigil`` app."""
    registry_app.command("register")(register_run)
    registry_app.command("show")(show)
    registry_app.command("promote")(promote)
    registry_app.command("pull")(pull)
    registry_app.command("gate")(gate)
    stage_app.command("evaluate")(stage_evaluate)
    stage_app.command("holdout")(stage_holdout)
    app.add_typer(registry_app, name="registry")
    app.add_typer(stage_app, name="stage")
