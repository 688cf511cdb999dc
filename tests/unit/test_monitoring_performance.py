"""Delayed-label performance: hand-computed figures, the read queries and the /metrics mirror."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from storage_support import prediction_record
from vigil.config import TrainConfig
from vigil.monitoring import create_metrics
from vigil.monitoring.mart_metrics import MartMetrics
from vigil.monitoring.marts import DRIFT, PERFORMANCE, latest_path, publish
from vigil.monitoring.performance import BusinessTotals, delayed_label_performance
from vigil.monitoring.queries import business_totals, labelled_predictions
from vigil.storage import (
    LabelRecord,
    create_db_engine,
    insert_labels,
    insert_prediction_records,
    upgrade_database,
)

COSTS = TrainConfig(cost_missed_fraud=100.0, cost_false_alarm=5.0, top_k_cards=2)
DAY = datetime(2018, 5, 1, 12, 0)
# (transaction_id, customer, amount, score, decision, label): TP, FP, FN, TN, unlabelled.
ROWS = [
    (1, 11, 100.0, 0.9, 1, 1),
    (2, 12, 50.0, 0.8, 1, 0),
    (3, 13, 200.0, 0.3, 0, 1),
    (4, 14, 10.0, 0.1, 0, 0),
    (5, 15, 70.0, 0.7, 1, None),
]


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "transaction_id": [r[0] for r in ROWS],
            "tx_datetime": [DAY] * len(ROWS),
            "customer_id": [r[1] for r in ROWS],
            "tx_amount": [r[2] for r in ROWS],
            "score": [r[3] for r in ROWS],
            "label": [r[4] for r in ROWS],
            "tx_fraud": [float("nan") if r[5] is None else float(r[5]) for r in ROWS],
        }
    )


def test_figures_match_hand_computation() -> None:
    report = delayed_label_performance(frame(), date(2018, 5, 1), date(2018, 5, 1), COSTS)
    assert (report.n_predictions, report.n_labelled, report.n_frauds) == (5, 4, 2)
    # Scores 0.9 (fraud), 0.8, 0.3 (fraud), 0.1: AP = 0.5 * 1 + 0.5 * 2/3.
    assert report.average_precision == pytest.approx(0.5 + 0.5 * 2 / 3)
    # Top 2 cards of the day: 11 (fraud) and 12 (genuine).
    assert report.card_precision_at_k == pytest.approx(0.5)
    assert (report.precision, report.recall) == (0.5, 0.5)
    business = report.business
    assert business.prevented_loss == 100.0
    assert business.missed_fraud_loss == 200.0
    assert business.false_alarms == 1
    assert business.expected_cost == 100.0 * 1 + 5.0 * 1


def test_no_label_yet_gives_undefined_ranking_metrics_not_zeros() -> None:
    unlabelled = frame().assign(tx_fraud=float("nan"))
    report = delayed_label_performance(unlabelled, date(2018, 5, 1), date(2018, 5, 1), COSTS)
    assert report.n_labelled == 0
    assert report.average_precision is None and report.card_precision_at_k is None
    assert report.business.prevented_loss == 0.0


def test_missing_column_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="tx_amount"):
        delayed_label_performance(
            frame().drop(columns="tx_amount"), date(2018, 5, 1), date(2018, 5, 1), COSTS
        )


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    url = f"sqlite:///{tmp_path / 'vigil.db'}"
    upgrade_database(url)
    engine = create_db_engine(url)
    records = [
        prediction_record(
            tid,
            tx_datetime=DAY,
            customer_id=customer,
            terminal_id=1,
            tx_amount=amount,
            score=score,
            label=decision,
            model_version="m1",
            latency_ms=1.0,
        )
        for tid, customer, amount, score, decision, _ in ROWS
    ]
    labels = [LabelRecord(r[0], r[5], DAY) for r in ROWS if r[5] is not None]
    with engine.begin() as connection:
        insert_prediction_records(connection, records)
        insert_labels(connection, labels)
    return engine


def test_stored_decisions_join_the_labels_that_arrived(engine: Engine) -> None:
    with engine.connect() as connection:
        stored = labelled_predictions(connection, date(2018, 5, 1), date(2018, 5, 1))
        outside = labelled_predictions(connection, date(2018, 5, 2), date(2018, 5, 9))
        totals = business_totals(connection)
    assert outside.empty
    assert stored["transaction_id"].tolist() == [1, 2, 3, 4, 5]
    assert stored["tx_fraud"].isna().tolist() == [False] * 4 + [True]
    report = delayed_label_performance(stored, date(2018, 5, 1), date(2018, 5, 1), COSTS)
    expected = delayed_label_performance(frame(), date(2018, 5, 1), date(2018, 5, 1), COSTS)
    assert report == expected
    # Flagged: transactions 1, 2 and 5 (100 + 50 + 70), whether labelled or not.
    assert totals == BusinessTotals(
        flagged_amount=220.0, prevented_loss=100.0, false_alarms=1, labels_fraud=2, labels_legit=2
    )


def _samples(exposition: bytes) -> dict[str, float]:
    samples = {}
    for line in exposition.decode().splitlines():
        if line.startswith("vigil_") and not line.startswith("vigil_http"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def _totals(prevented: float, alarms: int) -> dict[str, object]:
    return {
        "totals": {
            "flagged_amount": 500.0,
            "prevented_loss": prevented,
            "false_alarms": alarms,
            "labels_fraud": 3,
            "labels_legit": 40,
        }
    }


def test_mart_metrics_mirror_drift_and_raise_counters_to_the_totals(tmp_path: Path) -> None:
    drift = {
        "columns": [
            {"column": "tx_amount", "method": "psi", "score": 0.31},
            {"column": "tx_during_night", "method": "psi", "score": 0.02},
        ]
    }
    publish(tmp_path, DRIFT, date(2018, 5, 1), drift)
    publish(tmp_path, PERFORMANCE, date(2018, 5, 1), _totals(100.0, 2))
    assert latest_path(tmp_path, PERFORMANCE).stat().st_mode & 0o777 == 0o644
    metrics = create_metrics(CollectorRegistry())
    mirror = MartMetrics(metrics, tmp_path, min_interval_s=0.0)
    mirror.refresh()
    samples = _samples(metrics.exposition())
    assert samples['vigil_feature_drift_psi{feature="tx_amount"}'] == 0.31
    assert samples['vigil_feature_drift_psi{feature="tx_during_night"}'] == 0.02
    assert samples["vigil_prevented_loss_total"] == 100.0
    assert samples["vigil_false_alarms_total"] == 2.0
    assert samples["vigil_flagged_amount_total"] == 500.0
    assert samples['vigil_labels_received_total{outcome="fraud"}'] == 3.0
    assert samples['vigil_labels_received_total{outcome="legit"}'] == 40.0

    publish(tmp_path, PERFORMANCE, date(2018, 5, 2), _totals(160.0, 3))
    mirror.refresh()
    samples = _samples(metrics.exposition())
    assert samples["vigil_prevented_loss_total"] == 160.0
    assert samples["vigil_false_alarms_total"] == 3.0

    # A restarted process starts at the running totals: no jump back to zero.
    restarted = create_metrics(CollectorRegistry())
    MartMetrics(restarted, tmp_path, min_interval_s=0.0).refresh()
    assert _samples(restarted.exposition())["vigil_prevented_loss_total"] == 160.0


def test_mart_metrics_without_marts_leave_metrics_empty(tmp_path: Path) -> None:
    metrics = create_metrics(CollectorRegistry())
    MartMetrics(metrics, tmp_path / "absent", min_interval_s=0.0).refresh()
    samples = _samples(metrics.exposition())
    assert samples["vigil_prevented_loss_total"] == 0.0
    assert not any(name.startswith("vigil_feature_drift_psi{") for name in samples)
