"""Shared fixtures: small settings, and real services that fail (never skip) in CI."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from vigil.config import Settings, build_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

# MLflow 3 refuses its file store without this opt-in, which Vigil's entry points give
# (vigil.cli.common.allow_mlflow_file_store); tests call the tracking code directly.
os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
IN_CI = os.environ.get("CI", "").lower() == "true"
HANDBOOK_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "handbook"
if not HANDBOOK_DIR.exists():
    HANDBOOK_DIR = Path(os.environ.get("VIGIL_HANDBOOK_DIR", "../shared/datasets/handbook"))

POSTGRES_URL = os.environ.get(
    "VIGIL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("VIGIL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
AMQP_URL = os.environ.get("VIGIL_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip locally when a service is down; in CI a missing service fails the run."""
    if _port_open(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: integration services are required)")
    pytest.skip(message)


def require_handbook() -> Path:
    """The handbook's published data; skipped outside CI when absent, required in CI."""
    if (HANDBOOK_DIR / "transactions_2018-04-01_2018-08-14.parquet").exists():
        return HANDBOOK_DIR
    if IN_CI:
        pytest.fail(f"handbook data missing at {HANDBOOK_DIR} (CI=true: required)")
    pytest.skip(f"handbook data not found at {HANDBOOK_DIR}")


def require_package(name: str) -> None:
    """Skip locally when an optional package is not installed; in CI its absence fails."""
    import importlib.util

    if importlib.util.find_spec(name) is not None:
        return
    message = f"{name} is not installed (make setup installs it)"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: required)")
    pytest.skip(message)


@contextlib.contextmanager
def private_pg_schema(postgres_url: str, prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL schema (also the application name), dropped afterwards.

    Yields a URL whose connections use that schema, so concurrent test runs never clash.
    """
    from sqlalchemy import create_engine, make_url, text

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{name}"'))
    url = make_url(postgres_url).update_query_dict(
        {"options": f"-csearch_path={name}", "application_name": name}
    )
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        admin.dispose()  # a test may have restarted PostgreSQL: pooled connections are dead
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


@contextlib.contextmanager
def migrated_pg_engine(postgres_url: str, prefix: str) -> Iterator[Engine]:
    """An engine on a fresh, migrated private schema (:func:`private_pg_schema`)."""
    from vigil.storage import create_db_engine, upgrade_database

    with private_pg_schema(postgres_url, prefix) as url:
        upgrade_database(url)
        engine = create_db_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


@pytest.fixture
def handbook_dir() -> Path:
    return require_handbook()


@pytest.fixture
def postgres_url() -> str:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    return POSTGRES_URL


@pytest.fixture
def redis_url() -> Iterator[str]:
    require_service("Redis", "127.0.0.1", 6379)
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture
def amqp_url() -> str:
    require_service("RabbitMQ", "127.0.0.1", 5672)
    return AMQP_URL


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """The root and ``vigil`` loggers as they were: a benchmark's main configures them."""
    root, vigil = logging.getLogger(), logging.getLogger("vigil")
    handlers, level, vigil_level = root.handlers[:], root.level, vigil.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    vigil.setLevel(vigil_level)


@pytest.fixture
def small_settings(tmp_path: Path) -> Settings:
    """A small world (a few hundred customers, 60 days) writing under tmp_path."""
    return build_settings(
        {
            "data": {
                "n_customers": 300,
                "n_terminals": 600,
                "n_days": 60,
                "start_date": "2018-04-01",
                "raw_dir": str(tmp_path / "raw"),
            },
            "features": {"output_path": str(tmp_path / "features.parquet")},
            "train": {
                "train_start": "2018-04-25",
                "train_days": 14,
                "delay_days": 7,
                "test_days": 7,
                "epochs": 3,
                "runs_dir": str(tmp_path / "runs"),
            },
            "inference": {"model_path": str(tmp_path / "model" / "model.onnx")},
            "storage": {"database_url": f"sqlite:///{tmp_path / 'vigil.db'}"},
            "tracking": {"mlflow_uri": f"file:{tmp_path / 'mlruns'}"},
        }
    )
