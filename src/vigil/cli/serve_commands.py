"""``vigil serve``: the inference API under uvicorn (uvloop, httptools, no access log)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vigil.cli.common import ConfigOption, SetOption, VerboseOption, fail, start
from vigil.config import DEFAULT_API_KEY, DEFAULT_CONFIG_PATH, Settings

if TYPE_CHECKING:
    from vigil.features import StateStore

log = logging.getLogger(__name__)

# Worker processes (``--workers > 1``) rebuild the app from the settings the parent resolved.
SETTINGS_ENV = "VIGIL_SERVE_SETTINGS_JSON"


def _install_request_id_filter() -> None:
    from vigil.serving.context import RequestIdFilter

    for handler in logging.getLogger().handlers:
        handler.addFilter(RequestIdFilter())


def worker_app() -> object:
    """uvicorn factory for worker processes: settings come from the parent via the environment."""
    from vigil.logs import configure_logging
    from vigil.serving import create_app

    configure_logging(json_format=True)
    _install_request_id_filter()
    return create_app(Settings.model_validate_json(os.environ[SETTINGS_ENV]))


def _preflight(settings: Settings) -> None:
    """Fail before uvicorn starts, in one line naming the cause and the fix, when the model
    cannot load or the state store or database cannot be reached (else a long traceback in
    JSON)."""
    from vigil.decisions import load_models
    from vigil.features import make_state_store
    from vigil.inference.errors import ModelLoadError
    from vigil.redaction import mask_url

    model_path = settings.inference.model_path
    try:
        load_models(settings)
    except ModelLoadError as error:
        raise fail(
            f"cannot start the API: {error}. Fix: run `make demo` or `vigil train --promote` "
            f"(they write {model_path}), or point inference.model_path at a model "
            "(--set inference.model_path=PATH)"
        ) from None
    url = settings.storage.state_url
    store = make_state_store(url)
    try:
        store.ping()
    except Exception as error:  # the client's connection error, whatever the store
        raise fail(
            f"cannot start the API: state store {mask_url(url)} unreachable ({error}). "
            "Fix: start it, or set storage.state_url (memory:// for one process)"
        ) from None
    finally:
        store.close()
    from sqlalchemy.exc import SQLAlchemyError

    from vigil.storage.engine import create_db_engine, ensure_sqlite_directory, ping

    database = settings.storage.database_url
    ensure_sqlite_directory(database)
    engine = create_db_engine(database)
    try:
        ping(engine)
    except SQLAlchemyError as error:
        raise fail(
            f"cannot start the API: database {engine.url!r} unreachable "
            f"({str(error).splitlines()[0]}). Fix: start it, or set storage.database_url"
        ) from None
    finally:
        engine.dispose()


def check_api_key(settings: Settings, insecure_dev_key: bool) -> None:
    """Refuse to serve on a blank key, or on the default one unless explicitly allowed."""
    key = settings.serving.api_key.get_secret_value()
    if not key.strip():
        raise fail(
            "cannot start the API: serving.api_key is blank. Fix: set VIGIL_SERVING__API_KEY"
        )
    if key == DEFAULT_API_KEY:
        if not insecure_dev_key:
            raise fail(
                f"cannot start the API: serving.api_key is the published default "
                f"{DEFAULT_API_KEY!r}. Fix: set VIGIL_SERVING__API_KEY to a secret "
                "(openssl rand -hex 32), or pass --insecure-dev-key for local use"
            )
        log.warning("serving with the default API key: anyone can retrain and deploy models")


def warmed_store(settings: Settings, source: Path) -> StateStore:
    """An in-process state store holding what it would had it been live all along: the recent
    past of ``source`` and of the transactions and labels stored in the database (as
    ``vigil warm-state --stored`` does for Redis)."""
    from vigil.data.io import read_transactions
    from vigil.features import InMemoryStateStore, OnlineFeatureComputer
    from vigil.features.warmup import stored_transactions, warm_state, with_stored

    store = InMemoryStateStore()
    computer = OnlineFeatureComputer(settings.features, store)
    stored = stored_transactions(settings.storage.database_url, computer.spec.horizon_us)
    done = warm_state(computer, with_stored(read_transactions(source), stored))
    log.info("state warmed up to %s: %d transactions", done.until, done.transactions)
    return store


def uvicorn_options(settings: Settings, host: str | None, port: int | None) -> dict[str, Any]:
    """uvicorn's options for ``vigil serve`` (``http`` replaced by its protocol with one
    process); the settings' address unless ``host`` or ``port`` is given."""
    return {
        "host": host or settings.serving.host,
        "port": port or settings.serving.port,
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,
        "log_config": None,
        "lifespan": "on",
        "timeout_keep_alive": settings.serving.keep_alive_s,
    }


def serve(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    overrides: SetOption = None,
    verbose: VerboseOption = False,
    host: Annotated[str | None, typer.Option(help="Bind address (default: serving.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: serving.port).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (one per core).")] = 1,
    insecure_dev_key: Annotated[
        bool,
        typer.Option(
            "--insecure-dev-key",
            help=f"Allow the published default API key {DEFAULT_API_KEY!r} (local development).",
        ),
    ] = False,
    warm_from: Annotated[
        Path | None,
        typer.Option(
            "--warm-from",
            help="In-process state store (memory://, one worker) only: first fill it with "
            "this dataset's recent past and the transactions and labels stored in "
            "storage.database_url (for Redis: `vigil warm-state`).",
        ),
    ] = None,
) -> None:
    """Serve the fraud-scoring API (OpenAPI at /docs) until interrupted."""
    import uvicorn

    from vigil.serving import create_app

    settings = start(config, overrides, verbose, json_logs=True)
    if warm_from is not None and (
        workers > 1 or not settings.storage.state_url.startswith("memory://")
    ):
        raise fail(
            "--warm-from fills the in-process state store of one worker; with Redis, warm it "
            "with `vigil warm-state` instead"
        )
    _preflight(settings)
    check_api_key(settings, insecure_dev_key)
    _install_request_id_filter()
    options = uvicorn_options(settings, host, port)
    if workers == 1:
        from vigil.serving.direct import direct_protocol

        try:
            store = None if warm_from is None else warmed_store(settings, warm_from)
        except (ValueError, OSError) as error:
            raise fail(f"cannot warm the state store from {warm_from}: {error}") from None
        app = create_app(settings, state_store=store)
        # Admission control refuses surplus scoring requests before they become tasks, and
        # plain /forward requests are answered by the protocol itself (serving/direct.py).
        options["http"] = direct_protocol(app)
        uvicorn.run(app, **options)
        return
    os.environ[SETTINGS_ENV] = settings.model_dump_json(context={"reveal_secrets": True})
    uvicorn.run("vigil.cli.serve_commands:worker_app", factory=True, workers=workers, **options)


def register(app: typer.Typer) -> None:
    """Attach ``vigil serve`` to the ``vigil`` app."""
    app.command("serve")(serve)
