"""``vigil features``: the offline feature table from raw transactions."""

from __future__ import annotations

import time
from datetime import datetime
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


def warm_state(
    input_path: InputOption = None,
    until: Annotated[
        datetime | None,
        typer.Option(
            "--until",
            help="Warm the store as it would be at this instant (naive UTC). "
            "[default: just after the last transaction]",
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch", min=1, help="Transactions per bulk load.")
    ] = 1_048_576,
    stored: Annotated[
        bool,
        typer.Option(
            "--stored/--no-stored",
            help="Also the transactions (and labels) stored in storage.database_url within the "
            "horizon of the newest: after a Redis restart, the live traffic the input lacks.",
        ),
    ] = False,
    pending_labels: Annotated[
        bool,
        typer.Option(
            "--pending-labels/--due-labels",
            help="Apply every label of the input, also those not yet due (features use a label "
            "only once its transaction is the label delay old: the same as each label arriving "
            "on time). Default: only the labels already due.",
        ),
    ] = False,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    overrides: SetOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Fill the online state store (storage.state_url) with the recent past of a dataset.

    For a new Redis, after a layout change, or for history only a dataset holds (after a
    restart or failover the API and the worker re-record from the database themselves):
    records the transactions of the last longest window plus label delay before --until and
    applies the labels known by then.
    """
    settings = start(config, overrides, verbose)
    source = input_path or settings.data.raw_dir
    url = settings.storage.state_url
    if url.startswith("memory://"):
        raise fail("storage.state_url is memory://: set it to the shared store, e.g. redis://...")
    if not source.exists():
        raise fail(f"input {source} does not exist (run `vigil generate` or pass --input)")
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from tqdm import tqdm

    from vigil.data.io import read_transactions
    from vigil.features.online import OnlineFeatureComputer
    from vigil.features.state import make_state_store
    from vigil.features.warmup import plan_warmup, stored_transactions, with_stored
    from vigil.features.warmup import warm_state as warm
    from vigil.redaction import mask_url

    try:
        frame = read_transactions(source)
    except (ValueError, FileNotFoundError) as error:
        raise fail(str(error)) from None
    store = make_state_store(url)
    try:
        computer = OnlineFeatureComputer(settings.features, store)
        if stored:
            db_url = settings.storage.database_url
            frame = with_stored(frame, stored_transactions(db_url, computer.spec.horizon_us))
        plan = plan_warmup(computer, frame, until, pending_labels)
        with tqdm(total=plan.transactions + plan.labels, unit="item", desc="warming") as bar:
            done = warm(computer, frame, until, batch_size, bar.update, pending_labels)
    except (RedisConnectionError, RedisTimeoutError) as error:
        raise fail(f"state store unreachable at {mask_url(url)}: {error}") from None
    finally:
        store.close()
    typer.echo(
        f"state store warmed: {done.transactions:,} transactions and {done.labels:,} labels "
        f"from {done.since:%Y-%m-%d %H:%M} to {done.until:%Y-%m-%d %H:%M}"
    )


def register(app: typer.Typer) -> None:
    """Attach the feature commands to the ``vigil`` app."""
    app.command("features")(features)
    app.command("warm-state")(warm_state)
