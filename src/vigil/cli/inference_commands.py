"""``vigil predict``: batch scoring with the ONNX model (no torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vigil.cli.common import ConfigOption, SetOption, VerboseOption, fail, start
from vigil.config import DEFAULT_CONFIG_PATH


def predict(
    input_path: Annotated[
        Path,
        typer.Option(
            "--input",
            "-i",
            "--input-path",
            "--input_path",
            help="Transactions (or features): CSV (.csv, .csv.gz), Parquet file or directory.",
        ),
    ],
    output_path: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            "--output-path",
            "--output_path",
            help="Where to write transaction_id, score, label (.csv or .parquet).",
        ),
    ],
    model: Annotated[
        Path | None,
        typer.Option("--model", "-m", help="ONNX model file (default: inference.model_path)."),
    ] = None,
    features_precomputed: Annotated[
        bool,
        typer.Option(
            "--features-precomputed",
            help="The input already holds transaction_id and the model's feature columns.",
        ),
    ] = False,
    history: Annotated[
        Path | None,
        typer.Option(
            "--history",
            help="Labelled transactions before the input (e.g. data.raw_dir): window context. "
            "Without it the input must hold its own labelled history (at least the features' "
            "lookback, e.g. 37 days).",
        ),
    ] = None,
    cold_features: Annotated[
        bool,
        typer.Option(
            "--cold-features",
            help="Score without history: customer and terminal windows start empty "
            "(history-dependent features are 0). Otherwise such an input is refused.",
        ),
    ] = False,
    threads: Annotated[
        int, typer.Option("--threads", min=1, help="ONNX Runtime intra-op threads.")
    ] = 1,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    overrides: SetOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Score a file of transactions and write transaction_id, score, label."""
    settings = start(config, overrides, verbose)
    from vigil.inference.batch import PredictionInputError, predict_file
    from vigil.inference.errors import InvalidFeaturesError, ModelLoadError, ModelScoringError

    try:
        summary = predict_file(
            settings,
            input_path,
            output_path,
            model,
            features_precomputed,
            threads,
            history_path=history,
            cold_features=cold_features,
        )
    except (PredictionInputError, InvalidFeaturesError, ModelLoadError, ModelScoringError) as error:
        raise fail(f"{error} (nothing was written)") from None
    typer.echo(
        f"wrote {summary.rows} predictions ({summary.flagged} flagged) by model "
        f"{summary.model_version} to {summary.output_path} in {summary.seconds:.2f} s"
    )


def register(app: typer.Typer) -> None:
    """Attach the inference commands to the ``vigil`` app."""
    app.command("predict")(predict)
