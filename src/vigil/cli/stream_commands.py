"""``vigil worker``, ``vigil replay`` and ``vigil asyncapi``: the streaming entry points."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer

from vigil.cli.common import ConfigOption, SetOption, VerboseOption, fail, start
from vigil.config import DEFAULT_CONFIG_PATH, Settings


async def _run_worker(settings: Settings, metrics_port: int) -> None:
    from prometheus_client import CollectorRegistry, start_http_server

    from vigil.decisions import Runtime
    from vigil.inference.follower import follow_deployments, run_follower
    from vigil.monitoring import create_metrics
    from vigil.monitoring.gc_pauses import frozen_start_up
    from vigil.streaming import StreamWorker

    metrics = create_metrics(CollectorRegistry())
    if metrics_port:
        start_http_server(metrics_port, registry=metrics.registry)
    runtime = Runtime.build(settings, source="stream", metrics=metrics)
    runtime.watch_state()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = StreamWorker(settings.broker, runtime, metrics)
    # A model deployed through any API process reaches this worker too (hot swap per batch).
    follower = await asyncio.to_thread(
        follow_deployments, settings.storage.database_url, runtime.models
    )
    following = asyncio.create_task(run_follower(follower)) if follower else None
    try:
        with frozen_start_up(metrics.gc_pauses):  # as the API: start-up out of full scans
            await worker.run(stop)
    finally:
        if following is not None:
            following.cancel()
        await runtime.close()


def worker(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    overrides: SetOption = None,
    verbose: VerboseOption = False,
    metrics_port: Annotated[int, typer.Option(help="Serve /metrics on this port (0: off).")] = 0,
) -> None:
    """Score the transactions queue and apply the labels queue until SIGTERM (then drain)."""
    settings = start(config, overrides, verbose, json_logs=True)
    if settings.broker.url is None:
        raise fail("broker.url is not set: the worker needs RabbitMQ (try `vigil replay`)")
    asyncio.run(_run_worker(settings, metrics_port))


async def _run_replay(
    settings: Settings,
    source: Path,
    rate: float,
    limit: int | None,
    label_after: float | None,
    single: bool,
    warm_from: Path | None,
) -> None:
    from vigil.data.io import read_transactions
    from vigil.decisions import Runtime
    from vigil.features.warmup import warm_state
    from vigil.streaming import BrokerSink, InProcessSink, ReplaySummary, replay
    from vigil.streaming.replay import ReplayTarget

    frame = read_transactions(source)
    if limit is not None:
        frame = frame.sort_values("tx_datetime", kind="stable").head(limit)

    async def send(sink: ReplayTarget) -> ReplaySummary:
        return await replay(
            frame,
            sink,
            rate=rate,
            batch_size=settings.broker.batch_size,
            label_after_s=label_after,
            label_delay_days=settings.features.label_delay_days,
        )

    if settings.broker.url is not None:
        async with BrokerSink(settings.broker, envelopes=not single) as broker_sink:
            summary = await send(broker_sink)
    else:
        runtime = Runtime.build(settings, source="batch")
        try:
            if warm_from is not None:
                # The state a live store would hold just before the first replayed transaction,
                # plus the labels that arrive during the replay (used once due, as live).
                first = frame["tx_datetime"].min().to_pydatetime()
                history = read_transactions(warm_from)
                done = warm_state(runtime.features, history, until=first, pending_labels=True)
                typer.echo(
                    f"state warmed from {warm_from}: {done.transactions:,} transactions and "
                    f"{done.labels:,} labels from {done.since:%Y-%m-%d %H:%M} to "
                    f"{done.until:%Y-%m-%d %H:%M}"
                )
            summary = await send(InProcessSink(runtime))
        finally:
            await runtime.close()
    where = "RabbitMQ" if settings.broker.url else "in-process scoring"
    typer.echo(
        f"replayed {summary.transactions} transactions and {summary.labels} labels to {where}"
        f" in {summary.seconds:.1f} s ({summary.rate:,.0f} tx/s)"
    )


def replay_command(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    overrides: SetOption = None,
    verbose: VerboseOption = False,
    source: Annotated[
        Path | None,
        typer.Option("--input", "-i", help="Transactions (Parquet dir/file, CSV, .csv.gz)."),
    ] = None,
    rate: Annotated[float, typer.Option(help="Transactions per second (0: flat out).")] = 0.0,
    limit: Annotated[int | None, typer.Option(help="Replay only the first N.")] = None,
    label_after: Annotated[
        float, typer.Option(help="Send each label this many seconds later (<0: no labels).")
    ] = 5.0,
    single: Annotated[
        bool,
        typer.Option(
            "--single", help="One message per transaction instead of TransactionBatch ones."
        ),
    ] = False,
    warm_from: Annotated[
        Path | None,
        typer.Option(
            "--warm-from",
            help="In-process only: first fill the state store with this dataset's past before "
            "the first replayed transaction (as `vigil warm-state` does for Redis).",
        ),
    ] = None,
) -> None:
    """Replay a dataset into the transactions queue (or score in-process without a broker).

    Each chunk (``broker.batch_size`` transactions flat out, about 5 ms worth at a set rate)
    goes as one TransactionBatch message unless ``--single``.
    """
    settings = start(config, overrides, verbose)
    path = source if source is not None else settings.data.raw_dir
    if not path.exists():
        raise fail(f"no transactions at {path}: run `vigil generate` or pass --input")
    if warm_from is not None and settings.broker.url is not None:
        raise fail(
            "--warm-from fills the in-process state store; with a broker, warm the worker's "
            "store with `vigil warm-state` instead"
        )
    if warm_from is not None and not warm_from.exists():
        raise fail(f"no transactions at {warm_from} (--warm-from)")
    labels_after = label_after if label_after >= 0 else None
    asyncio.run(_run_replay(settings, path, rate, limit, labels_after, single, warm_from))


def asyncapi(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    overrides: SetOption = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the YAML.")] = Path(
        "docs/asyncapi.yaml"
    ),
) -> None:
    """Write the AsyncAPI document generated from the message models."""
    import yaml

    from vigil.streaming import build_asyncapi

    settings = start(config, overrides)
    output.write_text(yaml.safe_dump(build_asyncapi(settings.broker), sort_keys=False))
    typer.echo(f"wrote {output}")


def register(app: typer.Typer) -> None:
    """Attach the streaming commands to the ``vigil`` app."""
    app.command("worker")(worker)
    app.command("replay")(replay_command)
    app.command("asyncapi")(asyncapi)
