"""End to end: add_data -> retrain -> metrics -> deploy while /predict is under load.

The contract: not one request fails, and answers switch from the old model version to the
new one at the deploy. The fast test runs in-process with a stand-in training job; the slow
one runs a real uvicorn server, the real training subprocess and the MLflow registry.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api_support import (
    API_KEY,
    FakeWriter,
    api_settings,
    build_app,
    serve_in_thread,
    transaction,
    write_model,
)
from vigil.config import DataConfig, Settings
from vigil.data.io import read_transactions
from vigil.data.simulate import generate
from vigil.data.training_data import TrainingData
from vigil.retraining.runner import RetrainRunner, TrainOutcome
from vigil.serving.model_lifecycle import LifecycleServices
from vigil.storage import create_db_engine, upgrade_database

AUTH = {"X-API-Key": API_KEY}


class LoadGenerator:
    """Threads posting /predict in a loop; every status and model version is recorded."""

    def __init__(self, post: Callable[[dict], httpx.Response], threads: int = 2) -> None:
        self._post = post
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.statuses: Counter[int] = Counter()
        self.versions: list[str] = []
        self.errors: list[str] = []
        self._threads = [
            threading.Thread(target=self._loop, args=(i,), daemon=True) for i in range(threads)
        ]

    def _loop(self, worker: int) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            body = transaction(10_000_000 + worker * 1_000_000 + n, amount=float(n % 300))
            try:
                response = self._post(body)
            except httpx.HTTPError as error:  # a transport failure counts as a failed request
                with self._lock:
                    self.errors.append(repr(error))
                continue
            with self._lock:
                self.statuses[response.status_code] += 1
                if response.status_code == 200:
                    self.versions.append(response.json()["model_version"])

    def __enter__(self) -> LoadGenerator:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def wait_for(self, n: int, timeout: float = 30.0) -> None:
        """Block until at least ``n`` answers were recorded."""
        deadline = time.monotonic() + timeout
        while sum(self.statuses.values()) < n and time.monotonic() < deadline:
            time.sleep(0.01)


def new_labelled_rows(raw_dir: Path, n: int) -> str:
    """``n`` labelled rows with fresh ids, as CSV text."""
    rows = read_transactions(raw_dir).tail(n).drop(columns=["tx_fraud_scenario"])
    rows["transaction_id"] += 5_000_000
    return rows.to_csv(index=False)


def run_cycle(client: httpx.Client | TestClient, raw_dir: Path, timeout: float) -> dict:
    """add_data, retrain, poll metrics until finished, deploy; returns the deploy answer."""
    added = client.put(
        "/add_data",
        content=new_labelled_rows(raw_dir, 50),
        headers={**AUTH, "content-type": "text/csv"},
    )
    assert added.status_code == 200, added.text
    assert added.json()["appended"] == 50
    started = client.put("/retrain", headers=AUTH)
    assert started.status_code == 202, started.text
    experiment_id = started.json()["experiment_id"]
    deadline = time.monotonic() + timeout
    status = "queued"
    while status in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
        status = client.get(f"/metrics/{experiment_id}").json()["status"]
    experiment = client.get(f"/metrics/{experiment_id}").json()
    assert experiment["status"] == "finished", experiment
    deployed = client.post(f"/deploy/{experiment_id}", headers=AUTH)
    assert deployed.status_code == 200, deployed.text
    return deployed.json() | {"experiment": experiment}


class QuickJob:
    """Training stand-in that writes a tiny ONNX model after a short pause."""

    def __init__(self, settings: Settings, out_dir: Path) -> None:
        self.settings = settings
        self.out_dir = out_dir

    def run(self, experiment_id: int) -> TrainOutcome:
        time.sleep(0.3)
        path = write_model(self.settings, self.out_dir / "new.onnx", f"retrained-{experiment_id}")
        return TrainOutcome(path, {"test.average_precision": 0.5}, "mlflow-run")

    def cancel(self) -> None:
        """Nothing to stop."""


@pytest.fixture
def world(small_settings: Settings) -> Settings:
    """API settings and a migrated database (each test simulates its own data)."""
    settings = api_settings(small_settings)
    upgrade_database(settings.storage.database_url)
    return settings


@pytest.fixture
def in_process_client(world: Settings, tmp_path: Path) -> Iterator[TestClient]:
    generate(DataConfig(n_customers=50, n_terminals=100, n_days=10), world.data.raw_dir)
    engine = create_db_engine(world.storage.database_url)
    app = build_app(world, write_model(world, tmp_path / "old.onnx", "model-old"), FakeWriter())
    app.state.lifecycle = LifecycleServices(
        RetrainRunner(engine, QuickJob(world, tmp_path)),
        TrainingData(world.data.raw_dir),
        engine,
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
    engine.dispose()


def test_cycle_under_load_has_zero_failed_requests(
    in_process_client: TestClient, world: Settings
) -> None:
    client = in_process_client
    with LoadGenerator(lambda body: client.post("/predict", json=body)) as load:
        load.wait_for(20)
        deployed = run_cycle(client, world.data.raw_dir, timeout=10)
        answered = sum(load.statuses.values())
        load.wait_for(answered + 20)
    assert load.errors == []
    assert set(load.statuses) == {200}, load.statuses
    assert deployed["previous_version"] == "model-old"
    new_version = deployed["model_version"]
    assert load.versions[0] == "model-old"
    assert load.versions[-1] == new_version
    switch = load.versions.index(new_version)
    assert set(load.versions[:switch]) == {"model-old"}


@pytest.fixture
def live_server(world: Settings, tmp_path: Path) -> Iterator[str]:
    """A real uvicorn server in a thread, with the real (subprocess) training job."""
    from vigil.serving import create_app

    generate(world.data, world.data.raw_dir, progress=False)  # 300 customers, 60 days
    settings = world  # tracking: a file store under tmp_path
    write_model(settings, settings.inference.model_path, "model-old")
    with serve_in_thread(create_app(settings)) as url:
        yield url


@pytest.mark.slow
def test_real_retrain_and_deploy_under_load(live_server: str, world: Settings) -> None:
    client = httpx.Client(base_url=live_server, timeout=30)
    with client, LoadGenerator(lambda body: client.post("/predict", json=body)) as load:
        load.wait_for(20)
        deployed = run_cycle(client, world.data.raw_dir, timeout=240)
        answered = sum(load.statuses.values())
        load.wait_for(answered + 20)
    assert load.errors == []
    assert set(load.statuses) == {200}, load.statuses
    assert deployed["previous_version"] == "model-old"
    assert deployed["registry_version"] == 1
    assert deployed["experiment"]["mlflow_run_id"]
    assert "test.average_precision" in deployed["experiment"]["metrics"]
    assert load.versions[-1] == deployed["model_version"] != "model-old"
