"""Lifecycle routes: add_data, retrain (one at a time), metrics, deploy (hot swap), security."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import inspect, make_url, select

from api_support import API_KEY, FakeWriter, api_settings, build_app, transaction, write_model
from storage_support import prediction_record
from vigil.config import DataConfig, Settings
from vigil.data.io import read_transactions
from vigil.data.simulate import generate
from vigil.data.training_data import TrainingData
from vigil.features.state import InMemoryStateStore, Label, Transaction, WindowSpec
from vigil.inference.roles import CHAMPION
from vigil.retraining.job import TrainingFailed
from vigil.retraining.runner import RetrainRunner, TrainOutcome
from vigil.serving.model_lifecycle import LifecycleServices
from vigil.storage import (
    create_db_engine,
    create_experiment,
    get_experiment,
    insert_prediction_records,
    mark_experiment_running,
    save_deployment,
    upgrade_database,
)
from vigil.storage.tables import labels

AUTH = {"X-API-Key": API_KEY}


class ModelWritingJob:
    """Training stand-in: waits for the test, then 'trains' a tiny ONNX model."""

    def __init__(self, settings: Settings, out_dir: Path) -> None:
        self.settings = settings
        self.out_dir = out_dir
        self.release = threading.Event()

    def run(self, experiment_id: int) -> TrainOutcome:
        assert self.release.wait(10)
        path = self.out_dir / f"exp-{experiment_id}.onnx"
        write_model(self.settings, path, f"retrained-{experiment_id}", bias=-1.0)
        return TrainOutcome(path, {"test.average_precision": 0.61}, f"mlflow-{experiment_id}")

    def cancel(self) -> None:
        self.release.set()


@pytest.fixture
def settings(small_settings: Settings) -> Settings:
    return api_settings(small_settings)


@pytest.fixture
def job(settings: Settings, tmp_path: Path) -> ModelWritingJob:
    return ModelWritingJob(settings, tmp_path / "trained")


@pytest.fixture
def client(settings: Settings, tmp_path: Path, job: ModelWritingJob) -> Iterator[TestClient]:
    generate(DataConfig(n_customers=50, n_terminals=100, n_days=10), settings.data.raw_dir)
    upgrade_database(settings.storage.database_url)
    engine = create_db_engine(settings.storage.database_url)
    app = build_app(settings, write_model(settings, tmp_path / "a.onnx", "model-a"), FakeWriter())
    app.state.lifecycle = LifecycleServices(
        RetrainRunner(engine, job), TrainingData(settings.data.raw_dir), engine
    )
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    engine.dispose()


def labelled_csv(settings: Settings, n: int, offset: int = 1_000_000) -> str:
    rows = read_transactions(settings.data.raw_dir).tail(n).drop(columns=["tx_fraud_scenario"])
    rows["transaction_id"] += offset
    return rows.to_csv(index=False)


@pytest.mark.parametrize(
    ("method", "path"), [("put", "/add_data"), ("put", "/retrain"), ("post", "/deploy/1")]
)
def test_mutating_routes_need_the_api_key(client: TestClient, method: str, path: str) -> None:
    assert client.request(method, path).status_code == 401
    assert client.request(method, path, headers={"X-API-Key": "wrong"}).status_code == 403


def test_add_data_appends_valid_rows_and_reports_duplicates(
    client: TestClient, settings: Settings
) -> None:
    before = len(read_transactions(settings.data.raw_dir))
    body = labelled_csv(settings, 4)
    headers = {**AUTH, "content-type": "text/csv"}
    first = client.put("/add_data", content=body, headers=headers)
    assert first.status_code == 200
    assert first.json() == {"received": 4, "appended": 4, "duplicates": 0, "duplicate_ids": []}
    again = client.put("/add_data", files={"file": ("labels.csv", body, "text/csv")}, headers=AUTH)
    assert again.json()["appended"] == 0
    assert again.json()["duplicates"] == 4
    assert len(read_transactions(settings.data.raw_dir)) == before + 4


def test_add_data_rejects_an_invalid_file_whole(client: TestClient, settings: Settings) -> None:
    before = len(read_transactions(settings.data.raw_dir))
    body = labelled_csv(settings, 3).replace(",0\n", ",7\n", 1)  # one tx_fraud out of {0, 1}
    response = client.put("/add_data", content=body, headers={**AUTH, "content-type": "text/csv"})
    assert response.status_code == 422
    assert "tx_fraud" in response.json()["detail"]
    assert len(read_transactions(settings.data.raw_dir)) == before


def test_retrain_metrics_deploy_cycle(client: TestClient, job: ModelWritingJob) -> None:
    started = client.put("/retrain", headers=AUTH)
    assert started.status_code == 202
    experiment_id = started.json()["experiment_id"]
    assert isinstance(experiment_id, int)

    assert client.put("/retrain", headers=AUTH).status_code == 409
    assert client.get(f"/metrics/{experiment_id}").json()["status"] in ("queued", "running")
    assert client.post(f"/deploy/{experiment_id}", headers=AUTH).status_code == 409
    assert client.get("/metrics/999").status_code == 404
    assert client.post("/deploy/999", headers=AUTH).status_code == 404

    job.release.set()
    client.app.state.lifecycle.runner.wait(10)  # type: ignore[attr-defined]
    done = client.get(f"/metrics/{experiment_id}").json()
    assert done["status"] == "finished"
    assert done["metrics"] == {"test.average_precision": 0.61}
    assert done["mlflow_run_id"] == f"mlflow-{experiment_id}"
    assert done["duration_seconds"] >= 0

    assert client.post("/predict", json=transaction(1)).json()["model_version"] == "model-a"
    deployed = client.post(f"/deploy/{experiment_id}", headers=AUTH)
    assert deployed.status_code == 200
    body = deployed.json()
    assert (body["model_version"], body["previous_version"]) == (
        f"retrained-{experiment_id}",
        "model-a",
    )
    assert body["registry_version"] is None  # the fake job registered nothing
    new_version = client.post("/predict", json=transaction(2)).json()["model_version"]
    assert new_version == f"retrained-{experiment_id}"
    assert Path(body["model_path"]).read_bytes() == Path(done["model_path"]).read_bytes()
    listed = client.get("/experiments").json()
    assert [e["experiment_id"] for e in listed] == [experiment_id]


def test_uploaded_labels_are_verdicts_stored_and_online(
    client: TestClient, settings: Settings
) -> None:
    """A scored transaction's label uploaded with the training data reaches the labels table
    (business figures) and the online fraud state (terminal risk a week later)."""
    scored = transaction(9_000_001, customer_id=3, terminal_id=44)
    assert client.post("/predict", json=scored).status_code == 200
    row = {**scored, "tx_fraud": 1}
    body = "\n".join([",".join(row), ",".join(str(v) for v in row.values())]) + "\n"
    answer = client.put("/add_data", content=body, headers={**AUTH, "content-type": "text/csv"})
    assert answer.json()["appended"] == 1

    engine = create_db_engine(settings.storage.database_url)
    with engine.connect() as connection:
        stored = connection.execute(select(labels.c.transaction_id, labels.c.tx_fraud)).all()
    engine.dispose()
    assert [tuple(r) for r in stored] == [(9_000_001, 1)]

    services = client.app.state.services  # type: ignore[attr-defined]
    later = datetime.fromisoformat(scored["tx_datetime"]) + timedelta(days=8)
    probe = Transaction(9_000_002, later, 5, 44, 10.0)
    (aggregates,) = services.store.record([probe], services.features.spec)
    assert aggregates.terminal_frauds[-1] == 1  # the 30-day delayed window holds the fraud


def test_the_apps_one_set_up_migrates_and_builds_the_lifecycle_before_any_request(
    settings: Settings, tmp_path: Path
) -> None:
    """No lazy build: start-up migrates, fails experiments a dead process left, follows."""
    upgrade_database(settings.storage.database_url)
    engine = create_db_engine(settings.storage.database_url)
    with engine.begin() as connection:
        stale = create_experiment(connection)
        mark_experiment_running(connection, stale)
    model = write_model(settings, tmp_path / "a.onnx", "model-a")
    app = build_app(settings, model, FakeWriter())
    with TestClient(app, raise_server_exceptions=False):
        services = app.state.services
        assert services.lifecycle.engine.url == make_url(settings.storage.database_url)
        with engine.connect() as connection:
            left = get_experiment(connection, stale)
        assert left is not None and left.status == "failed" and "interrupted" in (left.error or "")
        # The follower runs on the same engine: a deployment recorded elsewhere is applied.
        other = write_model(settings, tmp_path / "b.onnx", "model-b")
        save_deployment(engine, "model-b", str(other), CHAMPION)
        deadline = time.monotonic() + 10
        while services.models.snapshot().champion.model_version != "model-b":
            assert time.monotonic() < deadline, "the deployment was not followed"
            time.sleep(0.1)
    engine.dispose()


def test_start_up_migrates_even_with_an_injected_writer(settings: Settings, tmp_path: Path) -> None:
    model = write_model(settings, tmp_path / "a.onnx", "model-a")
    app = build_app(settings, model, FakeWriter())
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/experiments").json() == []
    engine = create_db_engine(settings.storage.database_url)
    assert {"experiments", "deployments", "predictions"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def _files_and_labels(settings: Settings) -> tuple[int, int]:
    files = len(list(settings.data.raw_dir.rglob("*.parquet")))
    engine = create_db_engine(settings.storage.database_url)
    with engine.connect() as connection:
        stored = len(connection.execute(select(labels.c.transaction_id)).all())
    engine.dispose()
    return files, stored


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("tx_amount", "inf"),
        ("tx_amount", "1e308"),
        ("tx_amount", "1e13"),
        ("tx_amount", "nan"),
        ("transaction_id", "4000520804.7"),
        ("transaction_id", "5.9"),
        ("transaction_id", "True"),
        ("tx_fraud", "0.5"),
        ("tx_fraud", "True"),
        ("customer_id", "12\x005"),
        ("tx_datetime", "0001-01-01 00:00:00"),
        ("tx_datetime", "9999-12-31 23:59:59"),
    ],
)
def test_add_data_refuses_values_it_would_truncate_or_overflow(
    client: TestClient, settings: Settings, column: str, value: str
) -> None:
    rows = read_transactions(settings.data.raw_dir).tail(3).drop(columns=["tx_fraud_scenario"])
    rows["transaction_id"] += 2_000_000
    frame = rows.astype({column: object})
    frame.iloc[1, frame.columns.get_loc(column)] = value
    before = _files_and_labels(settings)
    body = frame.to_csv(index=False)
    response = client.put("/add_data", content=body, headers={**AUTH, "content-type": "text/csv"})
    assert response.status_code == 422, response.text
    assert _files_and_labels(settings) == before


@given(
    column=st.sampled_from(
        ["transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount", "tx_fraud"]
    ),
    spelling=st.sampled_from([str, str.upper, lambda name: f" {name.title()}\t"]),
    position=st.integers(min_value=0, max_value=6),
)
@hypothesis_settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_add_data_refuses_a_header_naming_a_column_twice(
    client: TestClient,
    settings: Settings,
    column: str,
    spelling: Callable[[str], str],
    position: int,
) -> None:
    """Which of two cells of one column counts would be a guess (pandas kept the first, the
    handbook's upper-case name crashed the contract with a 500, " Tx_Amount" was kept as an
    extra column): refused whole, 422."""
    rows = read_transactions(settings.data.raw_dir).tail(2).drop(columns=["tx_fraud_scenario"])
    rows["transaction_id"] += 3_000_000
    second = rows[column].iloc[::-1].to_numpy()  # another row's value
    rows.insert(position, "repeat", second)
    body = rows.to_csv(index=False).replace("repeat", spelling(column), 1)
    before = _files_and_labels(settings)
    response = client.put("/add_data", content=body, headers={**AUTH, "content-type": "text/csv"})
    assert response.status_code == 422, response.text
    assert column in response.json()["detail"]
    assert _files_and_labels(settings) == before


def test_add_data_reads_a_column_name_in_any_case_as_that_column(
    client: TestClient, settings: Settings
) -> None:
    """The header name ' Tx_Amount' is tx_amount, as the API's other CSV bodies read it; it
    was kept as an extra column and the file refused for a missing tx_amount."""
    rows = read_transactions(settings.data.raw_dir).tail(2).drop(columns=["tx_fraud_scenario"])
    rows["transaction_id"] += 4_000_000
    body = rows.rename(columns={"tx_amount": " Tx_Amount", "tx_fraud": "TX_Fraud"}).to_csv(
        index=False
    )
    response = client.put("/add_data", content=body, headers={**AUTH, "content-type": "text/csv"})
    assert response.status_code == 200, response.text
    assert response.json()["appended"] == 2
    stored = read_transactions(settings.data.raw_dir).set_index("transaction_id")
    expected = rows.set_index("transaction_id")
    assert stored.loc[expected.index, "tx_amount"].tolist() == expected["tx_amount"].tolist()
    assert stored.loc[expected.index, "tx_fraud"].tolist() == expected["tx_fraud"].tolist()


@pytest.mark.parametrize(
    "changed", [None, "tx_datetime", "customer_id", "terminal_id", "tx_amount"]
)
def test_add_data_labels_a_scored_transaction_only_as_itself(
    client: TestClient, settings: Settings, changed: str | None
) -> None:
    """A row whose id is a scored transaction labels that payment: under another time, card,
    terminal or amount the verdict (a fraud label here) would fall on a payment the row does
    not describe (and take its card off the case queue for cases.block_days): 409, nothing
    stored or written, as POST /predict refuses another payload under a stored id."""
    rows = read_transactions(settings.data.raw_dir).tail(2).drop(columns=["tx_fraud_scenario"])
    rows["transaction_id"] += 5_000_000
    rows["tx_fraud"] = 1
    first = rows.iloc[0]
    scored = prediction_record(
        int(first["transaction_id"]),
        tx_datetime=first["tx_datetime"].to_pydatetime(),
        customer_id=int(first["customer_id"]),
        terminal_id=int(first["terminal_id"]),
        tx_amount=float(first["tx_amount"]),
    )
    engine = create_db_engine(settings.storage.database_url)
    with engine.begin() as connection:
        insert_prediction_records(connection, [scored])
    engine.dispose()
    if changed == "tx_datetime":
        rows.iloc[0, rows.columns.get_loc(changed)] -= timedelta(hours=1)
    elif changed is not None:
        rows.iloc[0, rows.columns.get_loc(changed)] += 1
    before = _files_and_labels(settings)
    body = rows.to_csv(index=False)
    response = client.put("/add_data", content=body, headers={**AUTH, "content-type": "text/csv"})
    if changed is None:
        assert response.status_code == 200, response.text
        assert _files_and_labels(settings)[1] == before[1] + 2
        return
    assert response.status_code == 409, response.text
    assert f"transaction_id {scored.transaction_id}" in response.json()["detail"]
    assert changed in response.json()["detail"]
    assert _files_and_labels(settings) == before


def test_add_data_converts_a_timezone_aware_time_to_utc(
    client: TestClient, settings: Settings
) -> None:
    rows = read_transactions(settings.data.raw_dir).tail(1).drop(columns=["tx_fraud_scenario"])
    rows["transaction_id"] += 3_000_000
    rows["tx_datetime"] = "2018-04-05T10:00:00+02:00"
    response = client.put(
        "/add_data", content=rows.to_csv(index=False), headers={**AUTH, "content-type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    stored = read_transactions(settings.data.raw_dir).set_index("transaction_id")
    assert stored.loc[int(rows["transaction_id"].iloc[0]), "tx_datetime"] == datetime(2018, 4, 5, 8)


class FlakyStore(InMemoryStateStore):
    """An in-process store that can be 'down' at the ping, or only when labels arrive."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.labels_down = False

    async def aping(self) -> bool:
        if self.down:
            raise RedisConnectionError("state store down (test)")
        return True

    async def aadd_label(self, label: Label) -> None:
        if self.down or self.labels_down:
            raise RedisConnectionError("state store down (test)")
        await super().aadd_label(label)


@pytest.fixture
def flaky(settings: Settings, tmp_path: Path) -> Iterator[tuple[TestClient, FlakyStore]]:
    generate(DataConfig(n_customers=50, n_terminals=100, n_days=10), settings.data.raw_dir)
    upgrade_database(settings.storage.database_url)
    engine = create_db_engine(settings.storage.database_url)
    store = FlakyStore()
    model = write_model(settings, tmp_path / "a.onnx", "model-a")
    app = build_app(settings, model, FakeWriter(), store)
    app.state.lifecycle = LifecycleServices(
        RetrainRunner(engine, ModelWritingJob(settings, tmp_path)),
        TrainingData(settings.data.raw_dir),
        engine,
    )
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c, store
    engine.dispose()


def test_add_data_with_the_state_store_down_writes_nothing(
    flaky: tuple[TestClient, FlakyStore], settings: Settings
) -> None:
    client, store = flaky
    store.down = True
    before = _files_and_labels(settings)
    body = labelled_csv(settings, 3)
    response = client.put("/add_data", content=body, headers={**AUTH, "content-type": "text/csv"})
    assert response.status_code == 503
    assert _files_and_labels(settings) == before


def test_add_data_failing_part_way_is_completed_by_a_retry(
    flaky: tuple[TestClient, FlakyStore], settings: Settings
) -> None:
    client, store = flaky
    scored = transaction(9_100_001, customer_id=3, terminal_id=44)
    assert client.post("/predict", json=scored).status_code == 200
    row = {**scored, "tx_fraud": 1}
    body = "\n".join([",".join(row), ",".join(str(v) for v in row.values())]) + "\n"
    headers = {**AUTH, "content-type": "text/csv"}
    store.labels_down = True  # reachable at the start, gone when the verdicts arrive
    assert client.put("/add_data", content=body, headers=headers).status_code == 503
    store.labels_down = False
    retry = client.put("/add_data", content=body, headers=headers)
    assert retry.status_code == 200 and retry.json()["duplicates"] == 1
    later = datetime.fromisoformat(scored["tx_datetime"]) + timedelta(days=8)
    (aggregates,) = store.record(
        [Transaction(9_100_002, later, 5, 44, 10.0)],
        WindowSpec((86_400_000_000 * 30,), 7 * 86_400_000_000),
    )
    assert aggregates.terminal_frauds[-1] == 1  # the retry brought the stored verdict online


@pytest.mark.parametrize("experiment_id", [2**31, 2**63, 2**64 + 5, 0, -1])
def test_out_of_range_experiment_ids_are_422_not_500(
    client: TestClient, experiment_id: int
) -> None:
    assert client.get(f"/metrics/{experiment_id}").status_code == 422
    assert client.post(f"/deploy/{experiment_id}", headers=AUTH).status_code == 422


class FailingJob:
    """A retrain whose child failed: the stored error carries a log tail with server paths."""

    def run(self, experiment_id: int) -> TrainOutcome:
        raise TrainingFailed(
            "`-m vigil train --config /srv/vigil/runs/experiments/1/config.yaml` exited with 1;"
            " log tail:\nTraceback: File /srv/vigil/.venv/lib/python3.11/site.py, line 3"
        )

    def cancel(self) -> None:
        """Nothing runs."""


def test_public_routes_show_the_first_line_of_a_failure_without_paths(
    settings: Settings, tmp_path: Path
) -> None:
    upgrade_database(settings.storage.database_url)
    engine = create_db_engine(settings.storage.database_url)
    app = build_app(settings, write_model(settings, tmp_path / "a.onnx", "model-a"), FakeWriter())
    app.state.lifecycle = LifecycleServices(
        RetrainRunner(engine, FailingJob()), TrainingData(settings.data.raw_dir), engine
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        experiment_id = client.put("/retrain", headers=AUTH).json()["experiment_id"]
        deadline = time.monotonic() + 10
        while (body := client.get(f"/metrics/{experiment_id}").json())["status"] != "failed":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        listed = client.get("/experiments").json()
    engine.dispose()
    for error in (body["error"], listed[0]["error"]):
        assert "/srv" not in error and "Traceback" not in error
        assert "exited with 1" in error and ".../config.yaml" in error
