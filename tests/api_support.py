"""Helpers for the API tests: a hand-checkable model file, an in-process writer, an app."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from onnx_factory import logistic_model, make_metadata, save
from vigil.config import Settings
from vigil.features import InMemoryStateStore, StateStore, feature_names
from vigil.inference.manager import ModelManager
from vigil.serving import create_app
from vigil.storage import (
    DatabaseUnavailable,
    PredictionRecord,
    RecordRejected,
    WriterOverloaded,
)

API_KEY = "test-key-0123"
AMOUNT_WEIGHT = 0.05
THRESHOLD = 0.5


def expected_score(amount: float, bias: float) -> float:
    """The test model's score, by hand: sigmoid(0.05 * tx_amount + bias)."""
    return 1.0 / (1.0 + math.exp(-(AMOUNT_WEIGHT * amount + bias)))


def write_model(settings: Settings, path: Path, version: str, bias: float = -5.0) -> Path:
    """A logistic model over the configured features whose score depends on the amount only."""
    names = feature_names(settings.features)
    weights = [AMOUNT_WEIGHT if name == "tx_amount" else 0.0 for name in names]
    metadata = make_metadata(names, threshold=THRESHOLD, model_version=version)
    return save(logistic_model(weights, bias, metadata), path)


def make_manager(settings: Settings, path: Path) -> ModelManager:
    """A model manager serving ``path`` for the configured features."""
    return ModelManager.from_paths(path, available_features=feature_names(settings.features))


def api_settings(settings: Settings, **serving: object) -> Settings:
    """``settings`` with the test API key and any serving overrides."""
    values = {"api_key": SecretStr(API_KEY), **serving}
    return settings.model_copy(update={"serving": settings.serving.model_copy(update=values)})


class FakeWriter:
    """The group-commit writer's interface, in memory: records what a real one would commit."""

    def __init__(self) -> None:
        self.records: list[PredictionRecord] = []
        self.healthy = True
        self.overloaded = False
        self.queue_depth = 0
        self.refused: set[int] = set()

    async def submit(self, record: PredictionRecord) -> None:
        """Store ``record``, or fail like the real writer when overloaded or down."""
        if self.overloaded:
            raise WriterOverloaded("write queue full (test)")
        if not self.healthy:
            raise DatabaseUnavailable("database down (test)")
        (outcome,) = await self.submit_many([record])
        if outcome is not None:
            raise outcome

    async def submit_many(self, records: list[PredictionRecord]) -> list[RecordRejected | None]:
        """Store ``records``, failing like the real writer; ids in ``refused`` are refused alone."""
        if self.overloaded:
            raise WriterOverloaded("write queue full (test)")
        if not self.healthy:
            raise DatabaseUnavailable("database down (test)")
        await asyncio.sleep(0)  # like the real writer, yield while the batch commits
        outcomes: list[RecordRejected | None] = [
            RecordRejected(r.transaction_id, "test") if r.transaction_id in self.refused else None
            for r in records
        ]
        self.records.extend(r for r, o in zip(records, outcomes, strict=True) if o is None)
        return outcomes


class FailingStore(InMemoryStateStore):
    """A state store that breaks with an unexpected error (to test the generic 500)."""

    async def arecord(self, txs, spec):  # type: ignore[no-untyped-def]
        """Fail with an internal detail that must never reach the client."""
        raise RuntimeError("secret internal detail /etc/passwd")


def build_app(
    settings: Settings,
    model_path: Path,
    writer: FakeWriter,
    store: StateStore | None = None,
) -> FastAPI:
    """The API with injected model, in-process state and the fake writer."""
    return create_app(
        settings,
        model_manager=make_manager(settings, model_path),
        state_store=store if store is not None else InMemoryStateStore(),
        writer=writer,  # type: ignore[arg-type]
    )


def transaction(transaction_id: int = 1, amount: float = 57.16, **changes: object) -> dict:
    """A valid /predict body."""
    return {
        "transaction_id": transaction_id,
        "tx_datetime": "2018-09-30T23:56:36",
        "customer_id": 2513,
        "terminal_id": 7438,
        "tx_amount": amount,
        **changes,
    }


@contextmanager
def serve_in_thread(app: FastAPI, **options: Any) -> Iterator[str]:
    """``app`` under a real uvicorn server in a thread, on a free port; yields its base URL.

    ``options`` go to ``uvicorn.Config`` (``http=`` for ``vigil serve``'s protocol); the
    keep-alive timeout is ``vigil serve``'s, ``serving.keep_alive_s``, unless given."""
    settings = getattr(app.state, "settings", None)
    if settings is not None:
        options.setdefault("timeout_keep_alive", settings.serving.keep_alive_s)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
