"""The API's /metrics carries the pipelines' drift and business marts (ADR 0007)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from fastapi.testclient import TestClient

from api_support import FakeWriter, api_settings, build_app, write_model
from vigil.config import Settings
from vigil.monitoring.marts import DRIFT, PERFORMANCE, publish

TOTALS = {
    "flagged_amount": 900.5,
    "prevented_loss": 420.25,
    "false_alarms": 7,
    "labels_fraud": 5,
    "labels_legit": 95,
}


def test_metrics_expose_the_latest_drift_and_business_totals(
    small_settings: Settings, tmp_path: Path
) -> None:
    marts_dir = tmp_path / "marts"
    drift = {"columns": [{"column": "tx_amount", "method": "psi", "score": 0.42}]}
    publish(marts_dir, DRIFT, date(2018, 5, 23), drift)
    publish(marts_dir, PERFORMANCE, date(2018, 5, 23), {"totals": TOTALS})
    settings = api_settings(small_settings)
    settings = settings.model_copy(
        update={"monitoring": settings.monitoring.model_copy(update={"marts_dir": marts_dir})}
    )
    app = build_app(settings, write_model(settings, tmp_path / "a.onnx", "model-a"), FakeWriter())
    with TestClient(app) as client:
        text = client.get("/metrics").text
    assert 'vigil_feature_drift_psi{feature="tx_amount"} 0.42' in text
    assert "vigil_prevented_loss_total 420.25" in text
    assert "vigil_flagged_amount_total 900.5" in text
    assert "vigil_false_alarms_total 7.0" in text
    assert 'vigil_labels_received_total{outcome="fraud"} 5.0' in text
    assert 'vigil_labels_received_total{outcome="legit"} 95.0' in text
