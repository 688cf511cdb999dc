"""``vigil features``: the offline feature table from raw transactions."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from vigil.cli.common import ConfigOption, SetOption, VerboseOption, fail, start
from vigil.config import DEFAULT_CONFIG_PATH

InputOption = Annotated[
    Path | None,
    typer.Option(
        "--input",
        "-i",
        help="Day-partitioned Parquet dir or a Parquet file (Vigil's or the handbook's); "
        "CSV or a handbook .pkl dir are read into memory. [default: data.raw_dir]",
    ),
]
OutputOption = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Feature table (Parquet). [default: features.output_path]"),
]


def _is_parquet_source(path: Path) -> bool:
    """Parquet the DuckDB build reads directly (a file, or a directory holding Parquet)."""
    if path.is_dir():
        return next(path.rglob("*.parquet"), None) is not None
    return path.suffix.lower() == ".parquet"


def features(
    input_path: InputOption = None,
    output_path: OutputOption = None,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    overrides: SetOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Compute point-in-time features for every transaction and write them to Parquet."""
    settings = start(config, overrides, verbose)
    source = input_path or settings.data.raw_dir
    target = output_path or settings.features.output_path
    if not source.exists():
        raise fail(f"input {source} does not exist (run `vigil generate` or pass --input)")
    started = time.perf_counter()
    try:
        if _is_parquet_source(source):
            from vigil.features.offline import build_feature_table

            summary = build_feature_table(settings.features, source, target)
            rows, columns = summary.rows, summary.columns
        else:
            from vigil.data.io import read_transactions
            from vigil.features.definitions import feature_names
            from vigil.features.offline import compute_features_frame

            table = compute_features_frame(settings.features, read_transactions(source))
            target.parent.mkdir(parents=True, exist_ok=True)
            table.to_parquet(target, index=False)
            rows, columns = len(table), feature_names(settings.features)
    except (ValueError, FileNotFoundError) as error:
        raise fail(str(error)) from None
    seconds = time.perf_counter() - started
    typer.echo(f"features: {rows:,} rows, {len(columns)} features, {seconds:.1f} s -> {target}")
    typer.echo(f"columns: {', '.join(columns)}")


def register(app: typer.Typer) -> None:
    """Attach the feature commands to the ``vigil`` app."""
    app.command("features")(features)
