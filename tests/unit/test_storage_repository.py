"""Repositories on a migrated SQLite file: idempotent writes, reads, lifecycle bookkeeping."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from storage_support import prediction_record
from vigil.storage import (
    LabelRecord,
    PredictionRecord,
    StorageError,
    count_rows,
    create_db_engine,
    create_experiment,
    fail_experiment,
    fetch_prediction,
    fetch_predictions,
    finish_experiment,
    get_experiment,
    insert_labels,
    insert_prediction_records,
    latest_deployment,
    list_deployments,
    mark_experiment_running,
    recent_predictions,
    record_deployment,
    upgrade_database,
)
from vigil.storage.tables import labels, metadata, predictions, transactions


def make_record(transaction_id: int, score: float = 0.25, source: str = "api") -> PredictionRecord:
    """A hand-made scored transaction."""
    return prediction_record(
        transaction_id,
        tx_datetime=datetime(2018, 4, 1, 12, 0, transaction_id % 60),
        customer_id=7,
        terminal_id=42,
        tx_amount=12.5,
        score=score,
        reason_codes=["tx_amount"],
        latency_ms=1.5,
        source=source,
    )


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    url = f"sqlite:///{tmp_path / 'db' / 'vigil.db'}"
    upgrade_database(url)
    engine = create_db_engine(url)
    yield engine
    engine.dispose()


def test_migrations_create_exactly_the_declared_schema(engine: Engine) -> None:
    assert set(inspect(engine).get_table_names()) >= set(metadata.tables)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), metadata)
    assert diff == []


def test_upgrade_twice_is_a_no_op(engine: Engine) -> None:
    with engine.begin() as connection:
        insert_prediction_records(connection, [make_record(1)])
    upgrade_database(str(engine.url))
    with engine.connect() as connection:
        assert count_rows(connection, predictions) == 1


def test_same_transaction_id_twice_stores_one_row_and_keeps_the_first(engine: Engine) -> None:
    with engine.begin() as connection:
        insert_prediction_records(connection, [make_record(1, 0.9), make_record(2)])
    with engine.begin() as connection:
        insert_prediction_records(connection, [make_record(1, 0.1), make_record(3)])
    with engine.connect() as connection:
        assert count_rows(connection, transactions) == 3
        assert count_rows(connection, predictions) == 3
        stored = fetch_prediction(connection, 1)
    assert stored is not None
    assert stored["score"] == 0.9
    assert stored["label"] == 1
    assert stored["reason_codes"] == ["tx_amount"]
    assert stored["tx_amount"] == 12.5
    assert stored["tx_datetime"] == datetime(2018, 4, 1, 12, 0, 1)


def test_fetch_missing_and_many_and_recent(engine: Engine) -> None:
    records = [make_record(i) for i in (5, 3, 4)]
    with engine.begin() as connection:
        insert_prediction_records(connection, records)
    with engine.connect() as connection:
        assert fetch_prediction(connection, 99) is None
        assert [r["transaction_id"] for r in fetch_predictions(connection, [4, 99, 3])] == [3, 4]
        recent = recent_predictions(connection, limit=2)
    assert [r["transaction_id"] for r in recent] == [4, 3]


def test_labels_are_stored_once_and_report_which_are_new(engine: Engine) -> None:
    when = datetime(2018, 4, 9)
    with engine.begin() as connection:
        first = insert_labels(connection, [LabelRecord(1, 1, when), LabelRecord(2, 0, when)])
        again = insert_labels(connection, [LabelRecord(2, 1, when), LabelRecord(3, 0, when)])
        assert sorted(first) == [1, 2]
        assert again == [3]
        assert count_rows(connection, labels) == 3
        assert insert_labels(connection, []) == []


def test_deployments_latest_per_alias(engine: Engine) -> None:
    with engine.begin() as connection:
        record_deployment(connection, "m-1", "/models/1.onnx")
        record_deployment(connection, "m-2", "/models/2.onnx", alias="challenger")
        third = record_deployment(connection, "m-3", "/models/3.onnx", experiment_id=4)
    with engine.connect() as connection:
        champion = latest_deployment(connection)
        assert champion == third
        assert champion.experiment_id == 4
        assert latest_deployment(connection, "challenger").model_version == "m-2"
        assert latest_deployment(connection, "shadow") is None
        assert [d.model_version for d in list_deployments(connection)] == ["m-3", "m-2", "m-1"]


def test_experiment_lifecycle(engine: Engine) -> None:
    with engine.begin() as connection:
        first = create_experiment(connection)
        second = create_experiment(connection)
        assert (first, second) == (1, 2)
        assert get_experiment(connection, first).status == "queued"
        mark_experiment_running(connection, first)
        running = get_experiment(connection, first)
        assert running.status == "running"
        assert running.started_at is not None
        finish_experiment(connection, first, {"auc_roc": 0.87}, "run-1", "/m.onnx")
        fail_experiment(connection, second, "out of memory")
        done, failed = get_experiment(connection, first), get_experiment(connection, second)
    assert (done.status, done.metrics, done.mlflow_run_id) == (
        "finished",
        {"auc_roc": 0.87},
        "run-1",
    )
    assert (failed.status, failed.error) == ("failed", "out of memory")
    assert failed.finished_at is not None


def test_updating_a_missing_experiment_is_an_error(engine: Engine) -> None:
    with engine.begin() as connection, pytest.raises(StorageError, match="experiment 9"):
        mark_experiment_running(connection, 9)


def test_a_record_from_a_decision_has_every_value_in_its_own_field() -> None:
    tx = SimpleNamespace(
        transaction_id=1, tx_datetime=datetime(2018, 4, 1), customer_id=2, terminal_id=3,
        tx_amount=4.5,
    )  # fmt: skip
    reason = SimpleNamespace(feature="tx_amount")
    decision = SimpleNamespace(
        score=0.625, label=1, threshold=0.5, reason_codes=(reason,), model_version="m-7"
    )
    received, created = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    optional: dict[str, Any] = {
        "latency_ms": 8.5,
        "source": "stream",
        "extra": {"channel": "web"},
        "challenger_score": 0.25,
        "challenger_version": "c-9",
        "received_at": received,
        "created_at": created,
    }
    record = PredictionRecord.from_decision(tx, decision, **optional)
    assert record == PredictionRecord(
        transaction_id=1,
        tx_datetime=datetime(2018, 4, 1),
        customer_id=2,
        terminal_id=3,
        tx_amount=4.5,
        score=0.625,
        label=1,
        threshold=0.5,
        reason_codes=["tx_amount"],
        model_version="m-7",
        **optional,
    )
