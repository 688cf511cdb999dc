"""``vigil config``, ``vigil generate``, ``vigil validate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vigil.cli.common import ConfigOption, SetOption, VerboseOption, fail, start
from vigil.config import DEFAULT_CONFIG_PATH, settings_to_dict

if TYPE_CHECKING:
    from vigil.data.quality import QualityReport


def show_config(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    overrides: SetOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Print the resolved configuration (file + VIGIL_* environment + --set) as JSON."""
    settings = start(config, overrides, verbose)
    typer.echo(json.dumps(settings_to_dict(settings), indent=2))


def generate(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    overrides: SetOption = None,
    verbose: VerboseOption = False,
    out: Annotated[
        Path | None,
        typer.Option("--output", "-o", "--out", help="Output directory (default: data.raw_dir)."),
    ] = None,
    csv: Annotated[bool, typer.Option("--csv", help="Also write transactions.csv.")] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace day partitions already in the output.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar per day.")] = True,
) -> None:
    """Simulate transactions (handbook design; size and drift from data.*) into Parquet by day."""
    from vigil.data.simulate import generate as run_generate

    settings = start(config, overrides, verbose)
    out_dir = out if out is not None else settings.data.raw_dir
    try:
        summary = run_generate(
            settings.data, out_dir, csv=csv, progress=progress, overwrite=overwrite
        )
    except FileExistsError as error:
        raise fail(f"{error} (pass --overwrite)") from None
    by_scenario = ", ".join(f"{s}: {n:,}" for s, n in summary.frauds_by_scenario.items())
    typer.echo(
        f"wrote {summary.rows:,} transactions over {summary.days} days to {summary.out_dir}\n"
        f"frauds: {summary.frauds:,} ({summary.fraud_rate:.3%}); by scenario {{{by_scenario}}}\n"
        f"time: {summary.seconds:.1f} s ({summary.rows / max(summary.seconds, 1e-9):,.0f} rows/s)"
    )
    if summary.csv_path is not None:
        typer.echo(f"csv: {summary.csv_path}")


def _print_report(report: QualityReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 120)  # pipes and CI logs: do not squeeze the table
    rate = "n/a" if report.fraud_rate is None else f"{report.fraud_rate:.3%}"
    console.print(
        f"rows: {report.rows:,}   duplicate ids: {report.duplicate_ids:,}   fraud rate: {rate}   "
        f"period: {report.first_timestamp} .. {report.last_timestamp} ({len(report.daily)} days)"
    )
    table = Table("column", "dtype", "missing", "distinct", "min", "max", "mean")
    for name, stats in report.columns.items():
        mean = "" if stats.mean is None else f"{stats.mean:.4g}"
        table.add_row(
            name,
            stats.dtype,
            f"{stats.missing:,}",
            f"{stats.distinct:,}",
            "" if stats.min is None else str(stats.min),
            "" if stats.max is None else str(stats.max),
            mean,
        )
    console.print(table)


def validate(
    path: Annotated[
        Path, typer.Argument(help="CSV, Parquet file or dataset dir, handbook pkl dir.")
    ],
    report_path: Annotated[
        Path | None, typer.Option("--report", help="Save the data-quality report as JSON.")
    ] = None,
    require_labels: Annotated[
        bool, typer.Option("--require-labels", help="tx_fraud must be present.")
    ] = False,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    overrides: SetOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Check transactions against the data contract and print a data-quality report."""
    from vigil.data.contracts import DataContractError, validate_transactions
    from vigil.data.io import DataFormatError, read_transactions
    from vigil.data.quality import quality_report

    start(config, overrides, verbose)
    try:
        frame = read_transactions(path)
    except DataFormatError as error:
        raise fail(str(error)) from None
    report = quality_report(frame)
    _print_report(report)
    if report_path is not None:
        report.save(report_path)
        typer.echo(f"report: {report_path}")
    try:
        validate_transactions(frame, require_labels=require_labels)
    except DataContractError as error:
        raise fail(str(error)) from None
    typer.echo(f"valid: {len(frame):,} transactions satisfy the data contract")


def register(app: typer.Typer) -> None:
    """Attach the data commands to the ``vigil`` app."""
    app.command("config")(show_config)
    app.command("generate")(generate)
    app.command("validate")(validate)
