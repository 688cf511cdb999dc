"""``vigil backfill features|predict``: the offline build and batch scoring on Dask (ADR 0021)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from vigil.cli.common import ConfigOption, SetOption, VerboseOption, fail, start
from vigil.config import DEFAULT_CONFIG_PATH

SourceOption = Annotated[
    Path,
    typer.Option(
        "--input", "-i", help="Labelled transactions: a Parquet file or day-partitioned folder."
    ),
]
OutputOption = Annotated[Path, typer.Option("--output", "-o", help="Parquet file to write.")]
SchedulerOption = Annotated[
    str,
    typer.Option(
        help="'dask' (a local cluster of --workers processes), a Dask scheduler "
        "tcp://host:8786 (input and output on storage every worker reaches), or 'local'."
    ),
]
WorkersOption = Annotated[int, typer.Option(min=1, help="Processes of the local Dask cluster.")]
HashOption = Annotated[int, typer.Option(min=1, help="Hash buckets per entity side.")]
SlicesOption = Annotated[int, typer.Option(min=1, help="Time slices (whole days).")]


class Job(StrEnum):
    """What a backfill computes."""

    features = "features"
    predict = "predict"


def backfill(
    job: Annotated[
        Job,
        typer.Argument(
            help="features: the feature table (= `vigil features`); predict: the scores of "
            "a labelled input that is its own history (= `vigil predict`), in tie order."
        ),
    ],
    input_path: SourceOption,
    output_path: OutputOption,
    model: Annotated[
        Path | None, typer.Option(help="predict: ONNX model. [default: inference.model_path]")
    ] = None,
    scheduler: SchedulerOption = "dask",
    workers: WorkersOption = 2,
    hash_buckets: HashOption = 4,
    time_slices: SlicesOption = 4,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    overrides: SetOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Distributed backfill: independent buckets (entity hash x time slice) on Dask, joined
    per slice; the result equals the single-node command's."""
    settings = start(config, overrides, verbose)
    from vigil.backfill import build_feature_table_distributed, make_engine, predict_distributed

    if not input_path.exists():
        raise fail(f"input {input_path} does not exist")
    engine = make_engine(scheduler, workers)
    try:
        if job is Job.features:
            summary = build_feature_table_distributed(
                settings.features, input_path, output_path, engine, hash_buckets, time_slices
            )
        else:
            summary = predict_distributed(
                settings, input_path, output_path, engine, model, hash_buckets, time_slices
            )
    except FileNotFoundError as error:
        raise fail(str(error)) from None
    finally:
        engine.close()
    what = "feature rows" if job is Job.features else "scores"
    typer.echo(
        f"wrote {summary.rows} {what} to {output_path} from {summary.buckets} buckets "
        f"and {summary.slices} slices in {summary.seconds:.1f} s"
    )


def register(app: typer.Typer) -> None:
    """Attach ``vigil backfill`` to the ``vigil`` app."""
    app.command("backfill")(backfill)
