"""``vigil eda`` and ``vigil docs ...``: the generated reports and images under ``docs/``."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer

from vigil.cli.common import ConfigOption, SetOption, VerboseOption, fail, start
from vigil.config import DEFAULT_CONFIG_PATH

docs_app = typer.Typer(
    help="Rebuild the generated documents and images under docs/.", no_args_is_help=True
)


def eda(
    input_path: Annotated[
        Path,
        typer.Option(
            "--input", "-i", help="Transactions: Parquet/CSV file, Parquet dataset or pickles."
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Report folder.")] = Path(
        "docs/eda"
    ),
    sample_rows: Annotated[
        int, typer.Option(min=1000, help="Rows sampled for plots, correlations and drift.")
    ] = 200_000,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    overrides: SetOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Exploratory data analysis: HTML report with plots and computed findings."""
    from vigil.data.io import DataFormatError
    from vigil.reports.eda import run_eda

    settings = start(config, overrides, verbose)
    started = time.perf_counter()
    try:
        result = run_eda(settings, input_path, output, sample_rows)
    except DataFormatError as error:
        raise fail(str(error)) from None
    for line in result.findings:
        typer.echo(f"- {line}")
    typer.echo(f"report: {result.html} ({time.perf_counter() - started:.0f} s)")


@docs_app.command("tracker")
def tracker_images(
    workdir: Annotated[
        Path, typer.Option(help="Data, runs and the MLflow store (sqlite) of the showcase.")
    ] = Path("data/showcase"),
    out: Annotated[Path, typer.Option(help="Where the PNG files go.")] = Path("docs/images"),
    experiments_dir: Annotated[
        Path, typer.Option("--experiments-dir", help="Where the override files are.")
    ] = Path("configs/experiments"),
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    verbose: VerboseOption = False,
) -> None:
    """Train 3 experiments on 2 dataset versions into MLflow, then screenshot its UI."""
    from vigil.reports.browser import BrowserError
    from vigil.reports.tracker import build_showcase, screenshot_tracker

    start(config, None, verbose)
    started = time.perf_counter()
    showcase = build_showcase(config, workdir, experiments_dir, os.environ)
    try:
        written = screenshot_tracker(showcase, out, workdir / "mlflow-server.log")
    except BrowserError as error:
        raise fail(str(error)) from None
    for path in written:
        typer.echo(f"wrote {path}")
    typer.echo(f"tracker images in {time.perf_counter() - started:.0f} s")


@docs_app.command("one-pager")
def one_pager(
    out: Annotated[Path, typer.Option(help="Where one-pager.html/.pdf/.png go.")] = Path("docs"),
    root: Annotated[Path, typer.Option(help="Repository root (docs/results, docs/eda).")] = Path(),
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    overrides: SetOption = None,
    verbose: VerboseOption = False,
) -> None:
    """The A4 one-pager from the EDA, experiment and benchmark results files."""
    from vigil.reports.browser import BrowserError
    from vigil.reports.onepager import MissingResultsError, build_one_pager, pdf_pages

    settings = start(config, overrides, verbose)
    started = time.perf_counter()
    try:
        written = build_one_pager(settings, root, out)
    except (MissingResultsError, BrowserError) as error:
        raise fail(str(error)) from None
    pages = pdf_pages(written.pdf)
    typer.echo(f"wrote {written.html}, {written.pdf} ({pages} page(s)), {written.png}")
    typer.echo(f"one-pager in {time.perf_counter() - started:.0f} s")


@docs_app.command("reports")
def course_reports(
    out: Annotated[Path, typer.Option(help="Where the Markdown reports go.")] = Path(
        "docs/reports"
    ),
    root: Annotated[Path, typer.Option(help="Repository root (docs/results, dvc.yaml).")] = Path(),
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    overrides: SetOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Hypotheses, model preparation and automation reports from the results files."""
    from vigil.reports.course import write_reports

    settings = start(config, overrides, verbose)
    try:
        written = write_reports(root, settings, out)
    except FileNotFoundError as error:
        raise fail(f"{error} (run the benchmarks and `make handbook-results` first)") from None
    for path in written:
        typer.echo(f"wrote {path}")


@docs_app.command("demo-video")
def demo_video(
    workdir: Annotated[Path, typer.Option(help="Scratch folder (data, runs, frames).")] = Path(
        "data/demo-video"
    ),
    out: Annotated[Path, typer.Option(help="The MP4 (the GIF goes beside it).")] = Path(
        "docs/demo.mp4"
    ),
    verbose: VerboseOption = False,
) -> None:
    """Record the demo video from the real system: simulate, train, replay, serve, UI, deploy,
    case queue."""
    from vigil.reports.browser import BrowserError
    from vigil.reports.demo_video import record_demo
    from vigil.reports.video import duration_seconds

    start(DEFAULT_CONFIG_PATH, None, verbose)
    started = time.perf_counter()
    try:
        video = record_demo(workdir, out, out.with_suffix(".gif"))
    except (BrowserError, RuntimeError) as error:
        raise fail(str(error)) from None
    typer.echo(
        f"wrote {video} ({duration_seconds(video):.0f} s, {video.stat().st_size / 1e6:.1f} MB) "
        f"and {out.with_suffix('.gif')} in {time.perf_counter() - started:.0f} s"
    )


def register(app: typer.Typer) -> None:
    """Attach the report commands to the ``vigil`` app."""
    app.command("eda")(eda)
    app.add_typer(docs_app, name="docs")
