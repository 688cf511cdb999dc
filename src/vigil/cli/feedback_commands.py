"""``vigil evaluate``: the handbook protocol, optionally with a simulated investigator."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from vigil.cli.common import ConfigOption, SetOption, VerboseOption, fail, start
from vigil.config import DEFAULT_CONFIG_PATH, ConfigError


def evaluate_command(
    experiments: Annotated[
        list[str] | None,
        typer.Argument(help="Experiment names of configs/experiments (default: lightgbm)."),
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    overrides: SetOption = None,
    verbose: VerboseOption = False,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Raw labelled transactions (default: data.raw_dir)."),
    ] = None,
    feedback: Annotated[
        bool,
        typer.Option(
            "--feedback",
            help="Also replay the delay and test weeks with a simulated investigator whose "
            "verdicts feed the verdict features (and, unless --no-retrain, a retrain).",
        ),
    ] = False,
    seeds: Annotated[
        str, typer.Option("--seeds", help="Seeds: a list (0,1,2), a range (0-4) or a count.")
    ] = "0-4",
    cards_per_day: Annotated[
        int | None,
        typer.Option(
            "--cards-per-day",
            min=1,
            help="Review budget: cards reviewed per day. Default: cases.review_budget (100).",
        ),
    ] = None,
    every_hours: Annotated[
        int, typer.Option("--every-hours", help="Review round length (24: daily; divides 24).")
    ] = 24,
    mark_terminals: Annotated[
        bool,
        typer.Option(
            "--mark-terminals/--no-mark-terminals",
            help="The investigator marks the terminal of a compromised-terminal fraud.",
        ),
    ] = True,
    lookback_days: Annotated[
        int | None,
        typer.Option(
            "--lookback-days",
            min=0,
            help="A review also covers the card's transactions this many days back that "
            "have no verdict yet (0: the round's only; 7: everything still inside the delay). "
            "Default: cases.lookback_days (7), what the served verdict covers.",
        ),
    ] = None,
    retrain: Annotated[
        bool, typer.Option("--retrain/--no-retrain", help="Also the retrained variant.")
    ] = True,
    cache_dir: Annotated[
        Path, typer.Option("--cache-dir", help="Where feature tables are cached.")
    ] = Path("data/feedback-cache"),
    results: Annotated[
        Path | None,
        typer.Option(
            "--results", help="Also write the results as JSON (rewritten after each run)."
        ),
    ] = None,
    experiments_dir: Annotated[
        Path, typer.Option("--experiments-dir", help="Where the override files are.")
    ] = Path("configs/experiments"),
) -> None:
    """AP and CP@k on the test week, without and with analysts' feedback, per seed."""
    settings = start(config, overrides, verbose)
    from vigil.feedback.evaluation import FeedbackResult
    from vigil.feedback.investigator import ReviewPolicy
    from vigil.feedback.report import format_table, results_payload, run_grid, summarise
    from vigil.training.experiments import experiment_files, parse_seeds

    def write(done: list[FeedbackResult]) -> None:
        if results is not None:
            results.parent.mkdir(parents=True, exist_ok=True)
            payload = results_payload(done, source, policy, settings)
            results.write_text(json.dumps(payload, indent=2) + "\n")

    try:
        # the served queue's rule (cases.block_days, budget, look-back): one configuration
        policy = ReviewPolicy.of(
            settings.cases, every_hours, mark_terminals, cards_per_day, lookback_days
        )
        files = experiment_files(experiments_dir, experiments or ["lightgbm"])
        source = Path(data or settings.data.raw_dir)
        outcome = run_grid(
            config,
            files,
            overrides or [],
            parse_seeds(seeds, settings.train.seed),
            source,
            cache_dir,
            policy,
            feedback,
            retrain,
            environ=os.environ,
            on_result=write,
        )
    except (ConfigError, ValueError, RuntimeError, OSError) as error:
        raise fail(str(error)) from None
    typer.echo(format_table(summarise(outcome)))
    if results is not None:
        typer.echo(f"results written to {results}")


def register(app: typer.Typer) -> None:
    """Attach ``vigil evaluate`` to the ``vigil`` app."""
    app.command("evaluate")(evaluate_command)
